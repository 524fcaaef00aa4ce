import json

import safetensors.torch
import torch
from recipe_helpers import load_recipe, tiny_argv


def test_two_generations_teach_each_other_and_rerun_skips_them(tmp_path):
    recipe = load_recipe("feed_sequential")
    argv = tiny_argv(tmp_path, "--num_generations", "2")
    generations = recipe.main(argv)
    assert [g["generation"] for g in generations] == [1, 2]
    first, second = tmp_path / "generation_1", tmp_path / "generation_2"
    gen1 = json.loads((first / "results.json").read_text())
    gen2 = json.loads((second / "results.json").read_text())
    assert gen1["feed"]["teachers"] == [] and gen2["feed"]["teachers"] == [first.name]  # portable: the folder's name
    assert gen2["seed"] == gen1["seed"] + 1  # a fresh initialisation per generation

    # generation 2's teacher is generation 1's student, by weights
    from feed_hf.publishing.export import export_file
    from feed_hf.teachers.frozen import load_teacher_model

    teacher = load_teacher_model(json.loads(export_file(second, "local_sources.json").read_text())["teachers"][0])
    exported = safetensors.torch.load_file(first / "model.safetensors")
    assert all(torch.equal(teacher.state_dict()[k], v) for k, v in exported.items())

    summary = (tmp_path / "summary.md").read_text()
    assert "| 1 |" in summary and "| 2 | generation_1 |" in summary
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 2
    assert "generation 2 of sequential FEED" in (second / "README.md").read_text()
    assert "generation 1 of sequential FEED, trained with cross-entropy only" in (first / "README.md").read_text()

    mtime = (second / "model.safetensors").stat().st_mtime_ns
    rerun = recipe.main(tiny_argv(tmp_path, "--num_generations", "3"))
    assert (second / "model.safetensors").stat().st_mtime_ns == mtime  # finished generations are skipped
    assert [g["top1"] for g in rerun[:2]] == [g["top1"] for g in generations]
    assert (tmp_path / "generation_3" / "results.json").is_file()


def test_zero_generations_and_explicit_teachers_are_refused(tmp_path):
    import pytest

    recipe = load_recipe("feed_sequential")
    with pytest.raises(ValueError, match="num_generations must be >= 1, got 0"):
        recipe.main(tiny_argv(tmp_path, "--num_generations", "0"))
    with pytest.raises(ValueError, match="picks its own teachers"):
        recipe.main(tiny_argv(tmp_path, "--teachers", "x"))
