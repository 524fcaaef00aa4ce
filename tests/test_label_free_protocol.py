"""The matched label-free protocol (benchmarks/label_free_matched.py): disjoint rows, equal steps and passes."""

import pytest
from recipe_helpers import load_benchmark

from feed_hf.data.split_slices import split_rows

protocol = load_benchmark("label_free_matched")


def test_teacher_labelled_and_unlabelled_rows_are_disjoint_and_sized_as_asked():
    args = protocol.ProtocolArguments(teacher_images=300, labelled=100, unlabelled=200, probe_images=150, batch_size=50)
    rows = {name: set(split_rows(spec, 50000)) for name, spec in args.rows().items()}
    assert [len(rows[n]) for n in ("teachers", "labelled", "unlabelled", "probe")] == [300, 100, 200, 150]
    names = list(rows)
    for index, name in enumerate(names):
        for other in names[index + 1 :]:
            assert not rows[name] & rows[other], (name, other)


def test_the_matched_step_count_is_the_label_free_arms_two_stages():
    args = protocol.ProtocolArguments(labelled=2500, unlabelled=20000, batch_size=50)
    assert args.matched_steps() == 3 * 20000 // 50 + 15 * 2500 // 50 == 1950


def test_image_counts_that_would_make_steps_and_passes_differ_are_refused():
    with pytest.raises(ValueError, match="labelled=2510 is not a multiple of batch_size=50"):
        protocol.ProtocolArguments(labelled=2510)


def test_a_report_over_arms_of_different_compute_is_refused():
    same = {"top1": 50.0, "steps": 6, "passes": 300}
    arms = {protocol.LABEL_FREE: same, protocol.CE: same, protocol.PFEED: same, protocol.CE_LONG: {**same, "steps": 12}}
    protocol.check_matched({0: arms})  # the 2S convergence arm differs by design
    with pytest.raises(ValueError, match="different passes"):
        protocol.check_matched({0: {**arms, protocol.CE: {**same, "passes": 299}}})


def test_the_backbone_judgement_pairs_the_label_free_student_with_the_ce_student_and_sets_teachers_apart():
    backbones = {
        seed: {
            protocol.BACKBONE_LABEL_FREE: {"knn": 40.0 + seed, "linear": 50.0 + seed},
            protocol.BACKBONE_CE: {"knn": 38.0 + 2 * seed, "linear": 51.0},
        }
        for seed in (0, 1, 2)
    }
    summary = {"backbones": backbones, "teacher_backbones": {"teacher_0": {"knn": 45.0, "linear": 60.0}}}
    compared = protocol.backbone_comparisons(summary)
    assert compared["knn"]["tested"]["differences"] == [2.0, 1.0, 0.0]
    assert compared["linear"]["tested"]["differences"] == [-1.0, 0.0, 1.0]
    versus = compared["knn"]["versus_teachers"][f"{protocol.BACKBONE_LABEL_FREE} - teacher_0"]
    assert versus == [-5.0, -4.0, -3.0]
    section = "\n".join(protocol.backbone_section(summary))
    assert "teacher_0: k-NN 45.00, linear 60.00" in section and "+1.00 | +2.00, +1.00, +0.00" in section


def test_each_budget_has_its_own_arms_and_ce_runs_are_shared_by_step_count(tmp_path):
    assert protocol.arm_folder(tmp_path, "pfeed", 1, 3) == tmp_path / "pfeed_s3"  # the first invocation's names
    assert protocol.arm_folder(tmp_path, "pfeed", 2, 3) == tmp_path / "pfeed_x2_s3"
    # CE of 2S: budget 1's convergence check is budget 2's CE arm, one run.
    assert protocol.ce_folder(tmp_path, 2 * 1, 0) == protocol.ce_folder(tmp_path, 2, 0) == tmp_path / "ce_long_s0"
    assert protocol.ce_folder(tmp_path, 4, 0) == tmp_path / "ce_x4_s0"
    with pytest.raises(ValueError, match="budgets must be distinct multiples"):
        protocol.ProtocolArguments(budgets=[1, 1])


def test_the_report_has_one_section_per_budget_with_its_own_step_count(tmp_path):
    def arms(steps, shift):
        same = {"steps": steps, "passes": 50 * steps}
        return {
            protocol.LABEL_FREE: {**same, "top1": 50.0 + shift},
            protocol.CE: {**same, "top1": 51.0},
            protocol.PFEED: {**same, "top1": 52.0 + shift},
            protocol.CE_LONG: {"steps": 2 * steps, "passes": 100 * steps, "top1": 53.0},
        }

    summary = {
        "arguments": {},
        "rows": {},
        "hardware": "test",
        "minutes": 0,
        "teachers_top1": [60.0],
        "teacher_backbones": {},
        "budgets": {
            "1": {"matched_steps": 6, "per_seed": {"0": arms(6, 0.0), "1": arms(6, 1.0)}},
            "2": {"matched_steps": 12, "per_seed": {"0": arms(12, 2.0), "1": arms(12, 4.0)}},
        },
    }
    protocol.write_report(summary, tmp_path / "REPORT.md")
    text = (tmp_path / "REPORT.md").read_text()
    assert "## Budget 1: S = 6 optimizer steps" in text and "## Budget 2: S = 12 optimizer steps" in text
    assert "| label-free -> fine-tune - CE, S steps | +2.00 | +1.00, +3.00 |" in text  # budget 2's own arms
    with pytest.raises(ValueError, match="different steps"):
        summary["budgets"]["2"]["per_seed"]["0"][protocol.CE]["steps"] = 11
        protocol.write_report(summary, tmp_path / "REPORT.md")
