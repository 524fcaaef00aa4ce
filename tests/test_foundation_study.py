"""The agglomeration study (benchmarks/foundation_agglomeration.py): disjoint rows, equal steps and passes in every
arm as the CLI parses them, and no report over arms of unequal compute."""

import pytest
from recipe_helpers import load_benchmark

from feed_hf.data.split_slices import split_rows
from feed_hf.runs.arguments import parse_arguments
from feed_hf_cli import COMMANDS

load_benchmark("label_free_matched")
study = load_benchmark("foundation_agglomeration")


def test_teacher_student_and_probe_rows_are_disjoint_and_sized_as_asked():
    args = study.ProtocolArguments(teacher_images=300, unlabelled=200, probe_images=150, batch_size=50)
    rows = {name: set(split_rows(spec, 50000)) for name, spec in args.rows().items()}
    assert [len(rows[n]) for n in ("teachers", "students", "probe")] == [300, 200, 150]
    assert not rows["teachers"] & rows["students"] and not rows["students"] & rows["probe"]
    assert not rows["teachers"] & rows["probe"]


def test_an_image_count_that_would_make_steps_and_passes_differ_is_refused():
    with pytest.raises(ValueError, match="unlabelled=20010 is not a multiple of batch_size=50"):
        study.ProtocolArguments(unlabelled=20010)
    with pytest.raises(ValueError, match=r"balances \['pca'\]"):
        study.ProtocolArguments(balances=["pca"])


def _parsed_arms(monkeypatch, tmp_path, args):
    """Every student arm's arguments exactly as the CLI parses them (no training: the parse is the contract)."""
    parsed = {}

    def fake_run_command(name, argv):
        parsed[current] = (name, parse_arguments(COMMANDS[name].dataclass_types(), argv))
        return {"compute": {"optimizer_steps": 0, "image_passes": 0}}

    monkeypatch.setattr(study, "run_command", fake_run_command)
    teachers = {"CNN": {"dir": str(tmp_path / "cnn")}, "ViT": {"dir": str(tmp_path / "vit")}}
    for current in args.arms():
        study._student_run(args, tmp_path / current, 0, current, teachers)
    return parsed, teachers


def test_every_arm_runs_the_same_steps_batch_and_rows_and_only_ce_sees_labels(monkeypatch, tmp_path):
    args = study.ProtocolArguments(teacher_images=1000, unlabelled=2000, batch_size=50, student_epochs=3)
    parsed, teachers = _parsed_arms(monkeypatch, tmp_path, args)
    assert args.matched_steps() == 3 * 2000 // 50 == 120
    assert set(parsed) == set(args.arms()) and len(parsed) == 6
    for arm, (command, (data, feed, *_)) in parsed.items():
        assert (feed.max_steps, feed.per_device_train_batch_size, feed.student) == (120, 50, "resnet8_cifar"), arm
        assert data.train_split == "train[1000:3000]", arm
        assert (data.label_column == "none") == (arm != study.CE), arm
        assert command == ("baselines" if arm == study.CE else "parallel"), arm
    feed_of = {arm: parsed[arm][1][1] for arm in parsed}
    both = [teachers["CNN"]["dir"], teachers["ViT"]["dir"]]
    assert (feed_of[study.BOTH].teachers, feed_of[study.BOTH].feed_balance) == (both, "none")
    assert (feed_of["both, PHI-S"].teachers, feed_of["both, PHI-S"].feed_balance) == (both, "phi_s")
    assert feed_of["both, standardize"].feed_balance == "standardize"
    assert feed_of[study.CNN_ALONE].teachers == [teachers["CNN"]["dir"]]
    assert feed_of[study.VIT_ALONE].teachers == [teachers["ViT"]["dir"]]


def test_an_exploratory_weighted_arm_comes_last_with_its_own_betas_and_is_named_so(monkeypatch, tmp_path):
    """The weighted arm, chosen after the main result, comes after the pre-stated arms (their folders unchanged),
    trains both teachers with the given per-teacher betas, and its comparisons say 'exploratory'."""
    args = study.ProtocolArguments(unlabelled=2000, exploratory_beta=[500, 279])
    assert args.arms()[:-1] == study.ProtocolArguments(unlabelled=2000).arms()
    parsed, teachers = _parsed_arms(monkeypatch, tmp_path, args)
    weighted = parsed[args.arms()[-1]][1][1]
    assert weighted.feed_beta == [500.0, 279.0] and weighted.teachers == [
        teachers["CNN"]["dir"],
        teachers["ViT"]["dir"],
    ]
    assert parsed[study.BOTH][1][1].feed_beta != [500.0, 279.0]  # the other arms keep the recipe's beta
    extra = [pair for pair in args.comparisons() if "exploratory" in pair[0]]
    assert extra == [(args.arms()[-1], study.BOTH), (args.arms()[-1], study.CNN_ALONE)]
    with pytest.raises(ValueError, match=r"exploratory_beta \[1.0\]: give two values"):
        study.ProtocolArguments(exploratory_beta=[1.0])


def _summary(per_seed):
    args = study.ProtocolArguments(balances=["phi_s"])
    teachers = {
        "CNN": {"dir": "t/teacher_cnn/teacher_0", "top1": 60.0, "knn": 50.0, "linear": 55.0},
        "ViT": {"dir": "t/teacher_vit/teacher_0", "top1": 50.0, "knn": 40.0, "linear": 45.0},
    }
    rows = {"arguments": study.asdict(args), "rows": args.rows(), "minutes": 1.0}
    return {**rows, "teachers": teachers, "per_seed": per_seed}


def _arms(shift=0.0, **change):
    same = {"steps": 6, "passes": 300, "knn": 30.0, "linear": 35.0}
    arms = [study.BOTH, "both, PHI-S", study.CNN_ALONE, study.VIT_ALONE, study.CE]
    facts = {arm: {**same, "knn": same["knn"] + shift * i} for i, arm in enumerate(arms)}
    return {**facts, **{arm: {**facts[arm], **values} for arm, values in change.items()}}


def test_a_report_over_arms_of_different_compute_is_refused_before_anything_is_written(tmp_path):
    summary = _summary({0: _arms(), 1: _arms(**{study.CE: {"steps": 7, "passes": 350}})})
    with pytest.raises(ValueError, match=r"seed 1: arms made different steps .*'CE \(labels\)': 7"):
        study.write_report(summary, tmp_path / "REPORT.md")
    assert not list(tmp_path.iterdir())
    study.check_matched({0: _arms()})


def test_paired_differences_and_student_minus_teacher_are_computed_from_the_arms(tmp_path):
    summary = _summary({0: _arms(shift=1.0), 1: _arms(shift=2.0), 2: _arms(shift=3.0)})
    compared = study.comparisons(summary)["knn"]
    assert compared["tested"][f"{study.BOTH} - {study.CNN_ALONE}"]["differences"] == [-2.0, -4.0, -6.0]
    assert compared["tested"][f"both, PHI-S - {study.BOTH}"]["differences"] == [1.0, 2.0, 3.0]
    assert compared["tested"][f"{study.BOTH} - {study.CE}"]["differences"] == [-4.0, -8.0, -12.0]
    assert compared["versus_teachers"][f"{study.CE} - ViT teacher"] == [-6.0, -2.0, 2.0]
    study.write_report(summary, tmp_path / "REPORT.md")
    assert "| both, PHI-S - both, no balancing | +2.00 | +1.00, +2.00, +3.00 |" in (tmp_path / "REPORT.md").read_text()
