"""No finished training is lost to the output folder (issue 18, items 6 and 9; issue 19, item 12): what the export
needs is checked before the first step, an export that fails after training goes to a fallback folder, a full
disk keeps the previous export, and a first export cut short at any point leaves no folder that looks like one."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import timm
import torch
from conftest import SyntheticImages, make_feed_config
from export_kill_worker import reference_models
from transformers import TrainerCallback

from feed_hf import FeedTrainer
from feed_hf.publishing import export as export_module
from feed_hf.publishing.export import ExportError, export_student, has_export
from feed_hf.publishing.export_store import VERSIONS_DIR

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "export_kill_worker.py"


class _StepCounter(TrainerCallback):
    steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def _logits(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize(
    ("blocker", "kind"),
    [
        (".cache", "file"),
        (".cache/huggingface", "file"),
        (f"{VERSIONS_DIR}", "file"),
        ("config.json", "folder"),
        ("model.safetensors", "folder"),
    ],
)
def test_an_output_folder_the_export_cannot_use_is_refused_before_the_first_step(tmp_path, blocker, kind):
    output_dir = tmp_path / "run"
    (output_dir / blocker).parent.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        (output_dir / blocker).write_text("not a folder")
    else:
        (output_dir / blocker).mkdir()
    counter = _StepCounter()
    trainer = FeedTrainer(args=make_feed_config(output_dir), train_dataset=SyntheticImages(32), callbacks=[counter])
    with pytest.raises(ValueError, match=f"output_dir .*{blocker.split('/')[-1]}.* is a {kind}.*choose another"):
        trainer.train()
    assert counter.steps == 0 and trainer.state.global_step == 0  # refused before any work


def test_a_file_named_like_the_old_version_folder_no_longer_costs_the_export(tmp_path):
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / ".feed-export").write_text("a file where feed-hf 0.2 kept its versions")
    trainer = FeedTrainer(args=make_feed_config(output_dir), train_dataset=SyntheticImages(32))
    trainer.train()
    loaded = timm.create_model(f"local-dir:{output_dir}", pretrained=True)
    torch.testing.assert_close(_logits(loaded), _logits(trainer.student))


def test_the_cli_refuses_an_unusable_output_folder_in_one_line_before_training(tmp_path):
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / ".cache").write_text("a file")
    argv = ["baselines", "--dataset", "digits", "--max_train_samples", "32", "--max_eval_samples", "16"]
    argv += ["--student", "resnet8_cifar", "--input_size", "16", "--max_steps", "1", "--use_cpu", "true"]
    argv += ["--output_dir", str(output_dir), "--report_to", "none", "--baseline", "ce"]
    done = subprocess.run([sys.executable, "-m", "feed_hf.cli", *argv], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2, done.stderr[-2000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("feed-hf: error: output_dir") and ".cache' is a file" in message
    assert "Traceback" not in done.stderr and not list(output_dir.glob("checkpoint-*"))


class _BreakTheStoreAtTheEnd(TrainerCallback):
    """Something changes the output folder after the checks passed: the store's place becomes a file."""

    def on_train_end(self, args, state, control, **kwargs):
        store = Path(args.output_dir) / ".cache"
        if store.is_dir():
            import shutil

            shutil.rmtree(store)
        store.write_text("replaced while training")


def test_an_export_that_fails_after_training_goes_to_a_fallback_folder_named_in_the_error(tmp_path):
    output_dir = tmp_path / "run"
    trainer = FeedTrainer(
        args=make_feed_config(output_dir), train_dataset=SyntheticImages(32), callbacks=[_BreakTheStoreAtTheEnd()]
    )
    with pytest.raises(ExportError, match="training finished, but the export to .* failed .*exported to '([^']+)'"):
        try:
            trainer.train()
        except ExportError as error:
            fallback = Path(str(error).split("exported to '")[1].split("'")[0])
            raise
    assert fallback.parent == tmp_path and fallback.name.startswith("run-export-")
    loaded = timm.create_model(f"local-dir:{fallback}", pretrained=True)
    torch.testing.assert_close(_logits(loaded), _logits(trainer.student))  # the trained student, not lost
    assert json.loads((fallback / "results.json").read_text())["compute"]["optimizer_steps"] == 4


_FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, resource, sys
    import torch
    from conftest import SyntheticImages, make_feed_config
    from feed_hf import FeedTrainer
    from feed_hf.publishing.export import ExportError

    output_dir, limit = sys.argv[1], int(sys.argv[2])
    trainer = FeedTrainer(args=make_feed_config(output_dir), train_dataset=SyntheticImages(32))
    trainer.train()  # the first export fits
    before = hashlib.sha256(open(f"{output_dir}/model.safetensors", "rb").read()).hexdigest()
    with torch.no_grad():
        for parameter in trainer.student.parameters():
            parameter.add_(1.0)  # another model to export
    if limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))  # no file beyond `limit` bytes
    else:  # a real small disk: fill it, leaving less than the new weights need
        with open(f"{output_dir}/filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"x" * 65536)
                    filler.flush()
            except OSError:
                pass
    try:
        trainer.save_model(output_dir)
    except ExportError as error:
        print(json.dumps({"message": str(error), "before": before}))
    else:
        print(json.dumps({"message": None, "before": before}))
    """
)


def _export_on_a_full_disk(output_dir: Path, limit: int) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_SCRIPT, str(output_dir), str(limit)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert_previous_export_intact(output_dir: Path, outcome: dict, reason: str) -> None:
    import hashlib

    assert outcome["message"] is not None, "the export should have failed on the full disk"
    assert reason in outcome["message"] and "its previous export is unchanged" in outcome["message"]
    assert "free space on that disk" in outcome["message"]
    assert hashlib.sha256((output_dir / "model.safetensors").read_bytes()).hexdigest() == outcome["before"]
    timm.create_model(f"local-dir:{output_dir}", pretrained=True)  # still loads
    leftovers = [p.name for p in (output_dir / VERSIONS_DIR).iterdir() if p.name.endswith(".partial")]
    assert leftovers == []  # what the failed export wrote is gone: the space is given back


def test_a_full_disk_at_export_keeps_the_previous_export_and_says_so(tmp_path):
    """RLIMIT_FSIZE in a subprocess: any write past 20 kB fails with EFBIG, as a full disk fails with ENOSPC."""
    output_dir = tmp_path / "run"
    outcome = _export_on_a_full_disk(output_dir, limit=20_000)
    _assert_previous_export_intact(output_dir, outcome, "File too large (EFBIG)")


def _mounted_tmpfs(mount_point: Path, options: str):
    """A tmpfs at `mount_point`; skipped where mounting is not allowed (it needs root)."""
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs: a real ENOSPC."""
    yield from _mounted_tmpfs(tmp_path / "small-disk", "size=3m")


@pytest.fixture
def read_only_disk(tmp_path):
    """A read-only tmpfs: EROFS for every write, root included (root ignores permission bits)."""
    yield from _mounted_tmpfs(tmp_path / "read-only", "ro,size=1m")


def test_a_read_only_output_folder_is_refused_before_training(read_only_disk):
    trainer_args = make_feed_config(read_only_disk)
    with pytest.raises(ValueError, match="output_dir .* is not a writable folder|cannot write the export's folder"):
        FeedTrainer(args=trainer_args, train_dataset=SyntheticImages(32)).train()


def test_a_real_full_disk_at_export_keeps_the_previous_export_and_says_so(small_disk):
    output_dir = small_disk / "run"
    outcome = _export_on_a_full_disk(output_dir, limit=0)
    _assert_previous_export_intact(output_dir, outcome, "No space left on device (ENOSPC)")


def test_too_little_room_for_the_export_is_refused_before_training(small_disk):
    (small_disk / "filler").write_bytes(b"x" * (3 * 2**20 - 100 * 1024))  # leaves ~100 kB; the student needs ~300
    trainer = FeedTrainer(args=make_feed_config(small_disk / "run"), train_dataset=SyntheticImages(32))
    with pytest.raises(ValueError, match=r"MiB free, but the export needs about 0\.\d MiB .*free space"):
        trainer.train()
    assert trainer.state.global_step == 0


class _Interrupted(BaseException):
    pass


def _dies_at(cut: int, calls, real):
    """`real`, except that the `cut`-th call counted by `calls` (shared by every patched function) dies."""

    def call(*args, **kwargs):
        if next(calls) == cut:
            raise _Interrupted
        return real(*args, **kwargs)

    return call


def test_a_first_export_cut_short_at_any_point_looks_like_no_export(tmp_path, monkeypatch):
    """Every rename and link of a first export, in turn, is where the process dies: the folder then either holds
    the whole export or shows no config.json (timm, transformers and feed-hf see no model there)."""
    expected = _logits(reference_models()["a"])
    real_replace, real_symlink = os.replace, os.symlink
    cut, outcomes = 0, []
    while True:
        cut += 1
        calls = iter(range(1, 10_000))
        monkeypatch.setattr(os, "replace", _dies_at(cut, calls, real_replace))
        monkeypatch.setattr(os, "symlink", _dies_at(cut, calls, real_symlink))
        folder = tmp_path / f"cut_{cut}"
        try:
            export_student(reference_models()["a"], folder, {"model": "a"})
            finished = True
        except _Interrupted:
            finished = False
        monkeypatch.setattr(os, "replace", real_replace)
        monkeypatch.setattr(os, "symlink", real_symlink)
        if has_export(folder):
            loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
            torch.testing.assert_close(_logits(loaded), expected)
        else:
            assert not (folder / "config.json").exists(), f"cut {cut}: a config.json without a loadable export"
        outcomes.append(has_export(folder))
        if finished:
            break
    assert cut > 5 and not outcomes[0] and outcomes[-1]  # the cuts covered the whole export


def test_sigkill_during_first_exports_never_leaves_a_config_without_its_model(tmp_path):
    expected = {name: _logits(model) for name, model in reference_models().items()}
    rng = random.Random(1)
    for trial in range(3):
        root = tmp_path / f"trial_{trial}"
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), str(root), "first"],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
        assert worker.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.5))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        for folder in sorted(root.iterdir()):
            if has_export(folder):
                which = json.loads((folder / "feed_config.json").read_text())["model"]
                loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
                torch.testing.assert_close(_logits(loaded), expected[which])
            else:
                assert not (folder / "config.json").exists(), folder


def test_a_failed_write_removes_its_partial_version(tmp_path, monkeypatch):
    export_student(reference_models()["a"], tmp_path, {"model": "a"})

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "save_for_hf", disk_full)
    with pytest.raises(ExportError, match="No space left on device .ENOSPC.; its previous export is unchanged"):
        export_student(reference_models()["b"], tmp_path, {"model": "b"})
    assert [p.name for p in (tmp_path / VERSIONS_DIR).iterdir() if p.name.endswith(".partial")] == []
    assert json.loads((tmp_path / "feed_config.json").read_text())["model"] == "a"


def test_run_records_count_each_export_once_not_its_version_copies(tmp_path):
    from feed_hf.publishing.export import write_export_file
    from feed_hf.runs.experiment_records import collect_run_records
    from feed_hf.runs.experiment_report import _training_time_line

    for name in ("a", "b"):
        export_student(reference_models()[name], tmp_path / name, {"model": name})
        write_export_file(tmp_path / name, "results.json", json.dumps({"task": "ce", "wall_time_s": 60.0}))
    assert sorted(collect_run_records(tmp_path)["runs"]) == ["a", "b"]
    assert "all 2 runs" in _training_time_line(str(tmp_path), 0.0)
