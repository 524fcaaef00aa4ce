import json
import shutil

import pytest
from recipe_helpers import load_recipe, tiny_argv

from feed_hf.publishing.export import export_file
from feed_hf.runs.analysis import AnalysisArguments, load_feed_run, run_analysis


@pytest.fixture(scope="module")
def feed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    load_recipe("train_teachers").main(tiny_argv(root / "teachers", "--teacher_seeds", "1", "2", "3"))
    teachers = [str(root / "teachers" / f"teacher_{i}") for i in range(3)]
    load_recipe("feed_parallel").main(tiny_argv(root / "pfeed", "--teachers", *teachers[:2]))
    return root / "pfeed", teachers


def test_reconstruction_errors_per_teacher_and_held_out(feed_run, tmp_path):
    run_dir, teachers = feed_run
    args = AnalysisArguments(
        run_dir=str(run_dir),
        heldout_teachers=[teachers[2]],
        heldout_steps=5,
        max_samples=48,
        batch_size=16,
        output_dir=str(tmp_path),
    )
    report = run_analysis(args)
    assert len(report["trained"]["train"]) == len(report["trained"]["test"]) == 2
    assert all(0 < error < 2 for error in report["trained"]["train"] + report["trained"]["test"])
    assert report["heldout"][0]["teacher"] == teachers[2] and report["heldout"][0]["test"] > 0
    assert json.loads((tmp_path / "reconstruction.json").read_text())["teachers"] == teachers[:2]
    assert (tmp_path / "reconstruction.png").read_bytes()[:4] == b"\x89PNG"


def test_loaded_run_reproduces_the_trained_connectors(feed_run):
    run_dir, _ = feed_run
    feed_student, teachers, feed = load_feed_run(run_dir)
    assert len(feed_student.connectors) == len(teachers) == 2 and feed["feed_p"] == 1


def test_student_without_connectors_is_explained(feed_run):
    _, teachers = feed_run
    with pytest.raises(ValueError, match="not a FEED student with connectors"):
        load_feed_run(teachers[0])


def test_analyze_reads_weights_under_the_pickle_policy_and_names_a_truncated_connectors_file(
    feed_run, tmp_path, capsys
):
    import safetensors.torch
    import torch

    from feed_hf_cli import main

    run_dir, _ = feed_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    torch.save(safetensors.torch.load_file(copy / "model.safetensors"), copy / "pytorch_model.bin")
    (copy / "model.safetensors").unlink()  # a student whose weights exist only as a pickle
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", "--run_dir", str(copy), "--max_samples", "16"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and error.startswith(f"feed-hf: error: student '{copy}' has its weights only")
    assert "--allow_pickle true" in error
    load_feed_run(copy, allow_pickle=True)  # opted in: read with weights_only=True
    connectors = export_file(copy, "feed_connectors.safetensors")  # kept with the export, out of a plain upload
    connectors.write_bytes(connectors.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"connectors file {connectors} is not a readable safetensors file"):
        load_feed_run(copy, allow_pickle=True)
