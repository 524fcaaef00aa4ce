"""Resumable protocol runs (benchmarks/protocol_runs.py): a rerun reuses exactly the finished runs it asked for
before, reruns the rest, and never reuses a judgement of weights that were trained again."""

from recipe_helpers import load_benchmark

protocol_runs = load_benchmark("protocol_runs")


class Runner:
    def __init__(self):
        self.calls = []

    def __call__(self, name, argv):
        self.calls.append((name, list(argv)))
        return {"command": name, "call": len(self.calls)}


def test_a_finished_run_with_the_same_arguments_is_reused_and_any_other_is_run(tmp_path):
    runner = Runner()
    first = protocol_runs.run_once(runner, "parallel", ["--seed", "0"], tmp_path / "run")
    again = protocol_runs.run_once(runner, "parallel", ["--seed", "0"], tmp_path / "run")
    assert again == first == {"command": "parallel", "call": 1} and len(runner.calls) == 1
    changed = protocol_runs.run_once(runner, "parallel", ["--seed", "1"], tmp_path / "run")
    assert changed["call"] == 2 and len(runner.calls) == 2


def test_a_run_cut_short_leaves_no_record_and_is_run_again(tmp_path):
    def dies(name, argv):
        raise KeyboardInterrupt

    try:
        protocol_runs.run_once(dies, "baselines", ["--seed", "0"], tmp_path / "run")
    except KeyboardInterrupt:
        pass
    runner = Runner()
    protocol_runs.run_once(runner, "baselines", ["--seed", "0"], tmp_path / "run")
    assert len(runner.calls) == 1


def test_training_again_drops_the_judgement_of_the_old_weights(tmp_path):
    runner, folder = Runner(), tmp_path / "run"
    protocol_runs.run_once(runner, "parallel", ["--seed", "0"], folder)
    protocol_runs.run_once(runner, "evaluate", ["--model", str(folder)], folder)
    protocol_runs.run_once(runner, "evaluate", ["--model", str(folder)], folder)
    assert [name for name, _ in runner.calls] == ["parallel", "evaluate"]
    protocol_runs.run_once(runner, "parallel", ["--seed", "5"], folder)  # new weights
    protocol_runs.run_once(runner, "evaluate", ["--model", str(folder)], folder)
    assert [name for name, _ in runner.calls] == ["parallel", "evaluate", "parallel", "evaluate"]


def test_a_reused_run_reports_the_time_it_took_when_it_ran(tmp_path):
    def slow(name, argv):
        import time

        time.sleep(0.2)
        return {"command": name}

    folder = tmp_path / "run"
    assert protocol_runs.recorded_seconds(folder, "evaluate") is None  # never ran
    protocol_runs.run_once(slow, "evaluate", ["--model", "m"], folder)
    protocol_runs.run_once(Runner(), "evaluate", ["--model", "m"], folder)  # reused: no new time
    assert protocol_runs.recorded_seconds(folder, "evaluate") >= 0.2
