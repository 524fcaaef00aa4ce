"""An export is replaced as a whole or not at all: re-exports, stale staging, old layouts, and real SIGKILLs."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch
from export_kill_worker import reference_models

from feed_hf.publishing.export import VERSIONS_DIR, export_student, write_export_file

WORKER = Path(__file__).resolve().parent / "export_kill_worker.py"


def _logits(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return model(torch.randn(2, 3, 32, 32))


def _assert_one_whole_export(folder: Path, expected: dict[str, torch.Tensor]) -> str:
    """The folder loads with timm, and config, weights and FEED record all describe the same model."""
    which = json.loads((folder / "feed_config.json").read_text())["model"]
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    torch.testing.assert_close(_logits(loaded), expected[which], rtol=0, atol=0)
    return which


def test_reexport_replaces_every_file_of_the_previous_export(tmp_path):
    models = reference_models()
    export_student(models["a"], tmp_path, {"model": "a"}, connectors=torch.nn.ModuleList([torch.nn.Conv2d(2, 2, 1)]))
    write_export_file(tmp_path, "results.json", '{"metrics": {"eval_top1": 99.0}}')
    write_export_file(tmp_path, "README.md", "card of model a")
    export_student(models["b"], tmp_path, {"model": "b"})
    expected = {name: _logits(model) for name, model in models.items()}
    assert _assert_one_whole_export(tmp_path, expected) == "b"
    # the old card, record and connectors described model a: they go with it
    for stale in ("results.json", "README.md", "feed_connectors.safetensors"):
        assert not (tmp_path / stale).exists() and not (tmp_path / stale).is_symlink()
    assert len([p for p in (tmp_path / VERSIONS_DIR).iterdir() if p.name != "current"]) == 1


def test_interrupted_exports_and_old_staging_are_cleaned_by_the_next_export(tmp_path):
    models = reference_models()
    export_student(models["a"], tmp_path, {"model": "a"})
    (tmp_path / VERSIONS_DIR / "v-1-dead.partial").mkdir()  # an export killed while writing
    (tmp_path / VERSIONS_DIR / "v-2-orphan").mkdir()  # one killed before it became current
    (tmp_path / ".export-abc123").mkdir()  # feed-hf 0.1 staging
    export_student(models["b"], tmp_path, {"model": "b"})
    leftovers = sorted(p.name for p in (tmp_path / VERSIONS_DIR).iterdir())
    assert len(leftovers) == 2 and "current" in leftovers
    assert not (tmp_path / ".export-abc123").exists()


def test_a_plain_file_export_of_feed_hf_0_1_is_replaced_as_a_whole(tmp_path):
    models = reference_models()
    export_student(models["a"], tmp_path / "v01", {"model": "a"})
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("config.json", "model.safetensors", "feed_config.json"):
        (plain / name).write_bytes((tmp_path / "v01" / name).read_bytes())  # real files, no links
    (plain / "README.md").write_text("card of model a")
    export_student(models["b"], plain, {"model": "b"})
    assert _assert_one_whole_export(plain, {n: _logits(m) for n, m in models.items()}) == "b"
    assert not (plain / "README.md").exists()


def _kill_trials(tmp_path: Path, trials: int) -> list[str]:
    expected = {name: _logits(model) for name, model in reference_models().items()}
    rng = random.Random(0)
    seen = []
    for trial in range(trials):
        folder = tmp_path / f"trial_{trial}"
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), str(folder)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
        assert worker.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))  # several exports happen in this window: the kill lands anywhere
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        seen.append(_assert_one_whole_export(folder, expected))
        export_student(reference_models()["a"], folder, {"model": "a"})  # the next export cleans up after the kill
        assert [p for p in (folder / VERSIONS_DIR).iterdir() if p.name.endswith(".partial")] == []
    return seen


def test_sigkill_during_exports_leaves_one_whole_export(tmp_path):
    seen = _kill_trials(tmp_path, trials=3)
    assert len(seen) == 3


@pytest.mark.slow
def test_sigkill_during_exports_leaves_one_whole_export_in_twenty_trials(tmp_path):
    seen = _kill_trials(tmp_path, trials=24)
    assert set(seen) == {"a", "b"}  # the kills landed during both exports, not always at the same moment
