"""The evidence grid end to end on digits in miniature: runs, reuse, report, plots."""

import json

import pytest
from recipe_helpers import load_recipe, tiny_argv


def _grid_argv(tmp_path, *extra):
    return tiny_argv(
        tmp_path / "runs",
        "--teacher",
        "resnet8_cifar",
        "--teacher_seeds",
        "1",
        "2",
        "--large_teacher",
        "resnet14_cifar",
        "--student_seeds",
        "0",
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


def test_grid_runs_every_method_reuses_finished_runs_and_writes_the_report(tmp_path):
    recipe = load_recipe("feed_experiment")
    summary = recipe.main(_grid_argv(tmp_path))
    assert set(summary["methods"]) == {"ce", "kd_ensemble", "feed_single", "pfeed_2", "pfeed_3", "feed_large"}
    assert summary["best_beta"] == 50.0 and len(summary["sfeed"]) == 2
    report = (tmp_path / "report" / "grid.md").read_text()
    for heading in ("## Teachers", "## β sweep", "mean ± std", "## Sequential FEED", "What the numbers say"):
        assert heading in report
    for plot in ("grid_accuracy.png", "grid_feed_loss.png", "grid_reconstruction/reconstruction.png"):
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
