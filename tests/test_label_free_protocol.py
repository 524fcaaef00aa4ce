"""The matched label-free protocol (benchmarks/label_free_matched.py): disjoint rows, equal steps and passes."""

import pytest
from recipe_helpers import load_benchmark

from feed_hf.data.split_slices import split_rows

protocol = load_benchmark("label_free_matched")


def test_teacher_labelled_and_unlabelled_rows_are_disjoint_and_sized_as_asked():
    args = protocol.ProtocolArguments(teacher_images=300, labelled=100, unlabelled=200, batch_size=50)
    rows = {name: set(split_rows(spec, 50000)) for name, spec in args.rows().items()}
    assert [len(rows[n]) for n in ("teachers", "labelled", "unlabelled")] == [300, 100, 200]
    assert not rows["teachers"] & rows["labelled"] and not rows["labelled"] & rows["unlabelled"]
    assert not rows["teachers"] & rows["unlabelled"]


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
