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
