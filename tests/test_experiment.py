"""The evidence grid end to end on digits in miniature: paired runs, reuse, report, plots, statistics."""

import hashlib
import json
import math

import pytest
from recipe_helpers import load_recipe, tiny_argv

from feed_hf import FeedTrainer
from feed_hf.runs.experiment_report import paired_section, round_one_section, verdict
from feed_hf.runs.preregistered_tests import analysis_plan
from feed_hf.runs.statistics import holm_adjusted, one_sided_paired, paired_comparison, paired_comparisons


def _grid_argv(tmp_path, *extra):
    return tiny_argv(
        tmp_path / "runs",
        "--teacher",
        "resnet8_cifar",
        "--teacher_seeds",
        "5",
        "6",
        "--large_teacher",
        "resnet14_cifar",
        "--student_seeds",
        "0",
        "1",
        "--secondary_seeds",
        "0",
        "--beta_sweep",
        "50",
        "--validation_samples",
        "32",
        "--sfeed_generations",
        "2",
        "--investigations",
        "one_layer connector_num_layers=1",
        "--report_path",
        str(tmp_path / "report" / "grid.md"),
        *extra,
    )


def _digest(tensor) -> str:
    return hashlib.sha256(tensor.detach().contiguous().numpy().tobytes()).hexdigest()


def _record_first_steps(monkeypatch) -> dict[str, dict]:
    """Per run folder: the student's weights when training starts and every training batch it sees."""
    seen: dict[str, dict] = {}
    original = FeedTrainer.compute_loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            record = seen.setdefault(self.args.output_dir, {"batches": []})
            if "initial" not in record:  # before the first optimizer step
                record["initial"] = hashlib.sha256(
                    "".join(_digest(v) for v in self.student.state_dict().values()).encode()
                ).hexdigest()
            record["batches"].append((_digest(inputs["pixel_values"]), _digest(inputs["labels"])))
        return original(self, model, inputs, return_outputs, num_items_in_batch)

    monkeypatch.setattr(FeedTrainer, "compute_loss", compute_loss)
    return seen


def test_grid_runs_every_method_reuses_finished_runs_and_writes_the_report(tmp_path, monkeypatch):
    recipe = load_recipe("feed_experiment")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "grid_round1.md").write_text("# Old grid\n\nold text\n\n## Old table\n")
    seen = _record_first_steps(monkeypatch)
    summary = recipe.main(_grid_argv(tmp_path))
    assert set(summary["methods"]) == {"ce", "kd_ensemble", "feed_single", "pfeed_2", "pfeed_3", "feed_large"}
    assert summary["best_beta"] == 50.0 and len(summary["sfeed"]) == 2

    # Paired: per seed, the four methods start from the same weights and see the same batches, in order.
    runs = tmp_path / "runs"
    for seed in (0, 1):
        paired = [seen[str(runs / m / f"seed_{seed}")] for m in ("ce", "kd_ensemble", "feed_single", "pfeed_3")]
        assert all(r["initial"] == paired[0]["initial"] and r["batches"] == paired[0]["batches"] for r in paired)
    assert seen[str(runs / "ce" / "seed_0")]["initial"] != seen[str(runs / "ce" / "seed_1")]["initial"]
    assert seen[str(runs / "ce" / "seed_0")]["batches"][0] != seen[str(runs / "ce" / "seed_1")]["batches"][0]
    assert seen[str(runs / "teachers" / "teacher_0")]["initial"] != seen[str(runs / "ce" / "seed_0")]["initial"]
    assert summary["methods"]["pfeed_3"]["seeds"] == [0, 1] and summary["methods"]["pfeed_2"]["seeds"] == [0]
    assert summary["paired"]["pfeed_3 - ce"]["n"] == 2 and summary["paired"]["pfeed_3 - ce"]["df"] == 1

    report = (tmp_path / "report" / "grid.md").read_text()
    # the plan is stated before any number, the primary test and the Holm-corrected family after the table
    assert report.index("## Analysis plan (pre-registered") < report.index("## Teachers")
    assert "**Primary test**: pFEED, all teachers − CE baseline > 0, paired one-sided t" in report
    assert report.index("## Students") < report.index("## Pre-registered tests")
    assert summary["preregistered"]["plan"]["secondary"] == [
        "kd_ensemble - ce",
        "feed_single - ce",
        "feed_single - kd_ensemble",
        "pfeed_3 - kd_ensemble",
        "pfeed_3 - feed_single",
    ]
    records = json.loads((tmp_path / "report" / "grid_runs.json").read_text())
    ce_run = records["runs"]["ce/seed_1"]
    assert ce_run["seed"] == 1 and ce_run["compute"]["optimizer_steps"] > 0 and ce_run["log_history"]
    assert "teachers/teacher_0" in records["runs"] and records["shared_config"]["per_device_train_batch_size"] == 32
    assert "seed" not in records["shared_config"] and ce_run["config_differences"]["seed"] == 1
    assert str(tmp_path) not in json.dumps(records)  # committed beside the report: no local paths
    for heading in ("## Teachers", "## β sweep", "mean ± std", "## Paired differences", "What the numbers say"):
        assert heading in report
    assert "## Round 1 (superseded)\n\n### Old grid\n\nold text\n\n#### Old table" in report
    saved = json.loads((tmp_path / "report" / "grid.json").read_text())
    assert saved["methods"]["ce"]["seeds"] == [0, 1] and len(saved["methods"]["ce"]["values"]) == 2
    for plot in (
        "grid_accuracy.png",
        "grid_feed_loss.png",
        "grid_paired.png",
        "grid_reconstruction/reconstruction.png",
    ):
        assert (tmp_path / "report" / plot).read_bytes()[:4] == b"\x89PNG"
    pfeed = json.loads((tmp_path / "runs" / "pfeed_3" / "seed_0" / "results.json").read_text())
    assert pfeed["feed"]["feed_beta"] == [50.0, 50.0]
    investigated = json.loads((tmp_path / "runs" / "investigations" / "one_layer" / "results.json").read_text())
    assert investigated["feed"]["connector"]["num_layers"] == 1 and investigated["data"]["num_eval"] == 32
    assert "| one_layer | `connector_num_layers=1` |" in report

    weights = tmp_path / "runs" / "ce" / "seed_0" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    recipe.main(_grid_argv(tmp_path))  # everything finished: nothing is retrained
    assert weights.stat().st_mtime_ns == mtime

    # the same investigation name with another change is not silently reused
    with pytest.raises(ValueError, match="'connector_num_layers': 1.*asks for .*'connector_num_layers': 2"):
        recipe.main(_grid_argv(tmp_path, "--investigations", "one_layer connector_num_layers=2"))

    with pytest.raises(ValueError, match="made with .*'feed_beta': \\[50.0.*asks for .*'feed_beta': \\[500.0"):
        recipe.main(_grid_argv(tmp_path, "--beta_sweep", "500"))


def test_teacher_seeds_that_are_student_seeds_are_refused_before_any_training(tmp_path):
    recipe = load_recipe("feed_experiment")
    argv = _grid_argv(tmp_path, "--teacher_seeds", "7", "0")
    with pytest.raises(ValueError, match=r"seeds \[0\] are both student seeds and teacher seeds"):
        recipe.main(argv)
    with pytest.raises(ValueError, match=r"student_seeds=\[3, 3\] .* must be non-empty and distinct"):
        recipe.main(_grid_argv(tmp_path, "--student_seeds", "3", "3"))
    assert not (tmp_path / "runs").exists()


def test_beta_sweep_seeds_that_are_test_or_teacher_seeds_are_refused_before_any_training(tmp_path):
    recipe = load_recipe("feed_experiment")
    for overlap in ("1", "101"):  # a student (test) seed, then a teacher seed
        argv = _grid_argv(tmp_path, "--teacher_seeds", "101", "102", "--beta_sweep_seeds", "20", overlap)
        with pytest.raises(ValueError, match=rf"beta_sweep_seeds \[{overlap}\] are also student or teacher seeds"):
            recipe.main(argv)
    assert not (tmp_path / "runs").exists()


def test_holm_and_one_sided_tests_of_known_values():
    assert holm_adjusted({"a": 0.01, "b": 0.04, "c": 0.03, "d": None}) == {
        "a": pytest.approx(0.03),
        "b": pytest.approx(0.06),
        "c": pytest.approx(0.06),
        "d": None,
    }
    comparison = paired_comparison({0: 1.0, 1: 2.0, 2: 3.7, 3: 1.2}, {0: 0.5, 1: 1.0, 2: 3.0, 3: 1.4})
    one_sided = one_sided_paired(comparison)
    assert one_sided["t_p"] == pytest.approx(comparison["p"] / 2)  # t > 0: half the two-sided p
    assert one_sided["wilcoxon_p"] == pytest.approx(2 / 16)  # W+ = 2+4+3 = 9: 2 of the 16 sign patterns reach 9
    with pytest.raises(ValueError, match="primary_comparison='pfeed_9 - ce' is not one of"):
        analysis_plan("pfeed_9 - ce")


def test_equal_paired_differences_get_no_p_value_and_no_mdd_rather_than_certainty():
    """Every difference +1.0 (zero spread): scipy gives p = 0 and the MDD formula 0; neither is a measurement."""
    comparison = paired_comparison({0: 2.0, 1: 3.0, 2: 4.0}, {0: 1.0, 1: 2.0, 2: 3.0})
    assert comparison["mean_difference"] == 1.0 and comparison["sd_difference"] == 0.0
    assert (comparison["t"], comparison["p"], comparison["mdd"]) == (None, None, None)
    assert "zero spread" in comparison["note"]
    assert one_sided_paired(comparison) == {"t_p": None, "wilcoxon_p": None}


def _synthetic_summary() -> dict:
    """Five paired seeds with known differences: pFEED − CE = +0.5, 0.5, 0.2, 1.0, 0.3; KD − CE small and mixed."""
    ce = [60.0, 61.0, 59.5, 60.5, 60.2]
    methods = {
        "ce": ce,
        "kd_ensemble": [c + d for c, d in zip(ce, [0.4, -0.3, 0.2, -0.1, 0.1], strict=True)],
        "pfeed_3": [c + d for c, d in zip(ce, [0.5, 0.5, 0.2, 1.0, 0.3], strict=True)],
    }
    methods = {name: {"values": v, "seeds": [0, 1, 2, 3, 4], "mean": sum(v) / 5} for name, v in methods.items()}
    return {"methods": methods, "ensembles": {}, "paired": paired_comparisons(methods)}


def test_report_prints_the_paired_t_df_p_and_mdd_of_known_differences():
    summary = _synthetic_summary()
    # By hand: mean 0.5, sd 0.3082, t = 0.5 / (0.3082 / √5) = 3.627, df 4, p = 0.022;
    # MDD = (t_{0.975,4} 2.7764 + t_{0.8,4} 0.9410) · 0.3082 / √5 = 0.512.
    pfeed = summary["paired"]["pfeed_3 - ce"]
    assert pfeed["t"] == pytest.approx(0.5 / (0.30822 / math.sqrt(5)), rel=1e-4) and pfeed["df"] == 4
    assert pfeed["mdd"] == pytest.approx((2.7764 + 0.9410) * 0.30822 / math.sqrt(5), rel=1e-3)
    table = "\n".join(paired_section(summary))
    assert "| pFEED, all teachers − CE baseline | 5 | +0.50 ± 0.31 | 3.63 | 4 | 0.022 | 0.51 |" in table
    text = verdict(summary)
    assert "pFEED, all teachers − CE baseline: +0.50 ± 0.31 points" in text
    assert "paired t = 3.63, df = 4, p = 0.022: **significant** at α = 0.05; pFEED is higher" in text
    # pFEED − KD: differences 0.1, 0.8, 0.0, 1.1, 0.2 → mean 0.44, sd 0.483, t = 2.04, p = 0.111, MDD 0.80
    assert "paired t = 2.04, df = 4, p = 0.111: **not significant**" in text
    assert "detects a paired difference of 0.80 points or more" in text


def test_round_one_section_is_the_old_report_with_headings_demoted(tmp_path):
    old = tmp_path / "r_round1.md"
    assert round_one_section(old) == []
    old.write_text("# Title\ntext #1\n## Part\n")
    assert round_one_section(old) == ["## Round 1 (superseded)", "", "### Title\ntext #1\n#### Part", ""]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bn connector_nrom=batchnorm2d", "'connector_nrom=batchnorm2d' is not 'key=value' with a FeedConfig field"),
        ("just_a_name", "needs a name .* and at least one key=value"),
        ("bad connector_norm=no_such_norm", "connector_norm"),
    ],
)
def test_bad_investigation_fails_before_any_training(tmp_path, spec, message):
    recipe = load_recipe("feed_experiment")
    with pytest.raises(ValueError, match=message):
        recipe.main(_grid_argv(tmp_path, "--investigations", spec))
    assert not (tmp_path / "runs").exists()  # nothing was trained or written
