"""The teacher store's resources are bounded and its faults are clean (issue 18, item 2; issue 22, item 5).

Full disks are real where the machine allows it: a 400 KiB tmpfs mounted in a private mount namespace
(`unshare -rm`, no root needed on kernels with user namespaces), and a file-size limit (`RLIMIT_FSIZE`) everywhere.
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import timm
import torch
from recipe_helpers import tiny_argv
from timm.data import resolve_model_data_config

from feed_hf.store import limits as store_limits
from feed_hf.store.key import store_fingerprint, store_key
from feed_hf.store.reader import StoreFolderError, StoreSettings, StoreSpaceError, TeacherStore, open_or_build_store
from feed_hf.teachers.frozen import FrozenTeacher
from feed_hf_cli import main

ROOT = Path(__file__).resolve().parent.parent
WORKER = str(Path(__file__).resolve().parent / "store_fault_worker.py")
WORKER_SETTINGS = StoreSettings(views=2, augmentation="crop_flip", dtype="float32")  # as store_fault_worker.py


def _worker_teacher():
    """The worker's teacher and data: the same store key as store_fault_worker.py's builds."""
    torch.manual_seed(1)
    config = resolve_model_data_config(timm.create_model("resnet8_cifar"))
    return FrozenTeacher(timm.create_model("resnet8_cifar", num_classes=7), config, student_map_size=(8, 8))


def _count(teacher, counts, index=0):
    teacher.register_forward_hook(lambda module, inputs, output: counts.__setitem__(index, counts[index] + 1))
    return teacher


def _run_worker(*steps, preexec_fn=None, wrap=()):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*wrap, sys.executable, WORKER, *steps], capture_output=True, text=True, env=env, preexec_fn=preexec_fn
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


# ---- views and size, checked before any teacher forward ----


def test_views_beyond_the_distinct_crops_are_refused_in_the_config_the_store_and_the_cli(
    tmp_path, feed_config_factory, capsys
):
    message = (
        r"teacher_store_views=100000 is more than the 162 distinct views .*\(\(2·4\+1\)² crop positions × 2 flips\)"
    )
    with pytest.raises(ValueError, match=message):
        feed_config_factory(tmp_path, teacher_store=True, batch_augmentation="crop_flip", teacher_store_views=100000)
    with pytest.raises(ValueError, match="more than the 25 distinct views batch_augmentation='crop' with padding 2"):
        StoreSettings(views=26, augmentation="crop", padding=2)
    StoreSettings(views=162, augmentation="crop_flip", padding=4)  # the bound itself is allowed
    argv = ["--teacher_store", "true", "--batch_augmentation", "crop_flip", "--teacher_store_views", "100000"]
    with pytest.raises(SystemExit) as exit_info:
        main(["parallel", *tiny_argv(tmp_path / "cli", "--teachers", "x", *argv)])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and error.startswith("feed-hf: error: teacher_store_views=100000 is more than")


def test_a_store_larger_than_the_free_space_is_refused_before_any_teacher_forward(
    tmp_path, synthetic_images, monkeypatch
):
    counts = [0]
    teacher = _count(_worker_teacher(), counts)
    monkeypatch.setattr(store_limits.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 500_000))
    with pytest.raises(StoreSpaceError) as refusal:
        open_or_build_store([teacher], synthetic_images(24), WORKER_SETTINGS, root=tmp_path / "s")
    assert str(refusal.value).startswith(
        "the teacher store needs 789.2 KB (24 images × 2 views × 1 teachers in float32)"
    )
    assert "500.0 KB free; lower teacher_store_views (now 2), teacher_store_dtype (now float32" in str(refusal.value)
    assert counts == [0] and [path.suffix for path in (tmp_path / "s").iterdir()] == [".lock"]  # nothing built


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux) for a private tmpfs")
def test_a_real_full_disk_and_read_only_folders_give_one_line_and_leave_nothing(tmp_path):
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are not available here: {probe.stderr.decode().strip()}")
    small, other = tmp_path / "small", tmp_path / "other"
    small.mkdir(), other.mkdir()
    (other / "file").write_text("")
    mounts = f"mount -t tmpfs -o size=400k tmpfs {small} && mount -t tmpfs -o size=4m tmpfs {other / 'ro'}"
    steps = [
        f"build:{small / 'store'}",  # 789 KB on a 400 KiB disk: refused by the size check
        f"lie:{small / 'store'}",  # the size check fooled: the disk fills during the build itself
        f"build:{other / 'file'}",  # teacher_store_dir is a file
        f"build:{other / 'ro' / 'store'}",  # a complete store ...
        f"sh:mount -o remount,ro {other / 'ro'}",
        f"build:{other / 'ro' / 'store'}",  # ... in a read-only folder opens
        f"build:{other / 'ro' / 'new'}",  # a new store in a read-only folder: one line
    ]
    script = f"mkdir -p {other / 'ro'} && {mounts} && exec {sys.executable} {WORKER} " + " ".join(
        f"'{step}'" for step in steps
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]  # never SIGBUS
    refused, filled, is_file, built, reopened, read_only = [json.loads(line) for line in done.stdout.splitlines()]
    assert refused["type"] == "StoreSpaceError" and "needs 789.2 KB" in refused["error"] and refused["forwards"] == 0
    assert filled["type"] == "StoreSpaceError" and "No space left on device" in filled["error"]
    assert "the disk filled while building the teacher store" in filled["error"]
    assert not [name for name in filled["left"] if name.endswith(".building")]
    assert is_file == {"error": f"teacher_store_dir {other / 'file'} is a file, not a folder; point teacher_store_dir "
                       "at a folder", "type": "StoreFolderError", "forwards": 0, "left": []}  # fmt: skip
    assert built["error"] is None and built["forwards"] == 48
    assert reopened["error"] is None and reopened["forwards"] == 0
    assert read_only["type"] == "StoreFolderError" and f"cannot create a store in {other / 'ro'}" in read_only["error"]


@pytest.mark.slow  # a second interpreter (~10 s on this machine); the tmpfs test above covers the default run
def test_a_file_size_limit_during_the_build_is_an_error_not_a_signal(tmp_path):
    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))

    (report,) = _run_worker(f"lie:{tmp_path / 'store'}", preexec_fn=limit_file_size)
    assert report["type"] == "StoreSpaceError" and "File too large" in report["error"]
    assert report["forwards"] == 0 and not [name for name in report["left"] if name.endswith(".building")]


# ---- builders: killed, concurrent ----


@pytest.mark.slow  # a second interpreter that builds for seconds before it is killed
def test_kill_9_during_a_build_a_waiting_builder_takes_over_and_nothing_is_left(tmp_path, synthetic_images):
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, WORKER, f"slow:{root}"], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():  # the worker holds the lock and is computing maps
            assert worker.poll() is None and time.monotonic() < deadline, "the worker did not start building"
            time.sleep(0.1)
        counts, result = [0], {}
        teacher = _count(_worker_teacher(), counts)
        data = synthetic_images(24)

        def build():
            result["store"] = open_or_build_store([teacher], data, WORKER_SETTINGS, root=root, batch_size=8)

        waiting = threading.Thread(target=build)
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive() and counts == [0]  # waits on the lock, computes nothing
        assert [p.name for p in root.iterdir() if p.name.endswith(".building")]
        os.kill(worker.pid, signal.SIGKILL)
        waiting.join(timeout=120)
    finally:
        worker.kill()
        worker.wait()
    store = result["store"]
    assert counts == [2 * 3]  # it built the whole store itself: 3 batches × 2 views
    assert sorted(p.name for p in root.iterdir()) == [store.path.name]  # no .building, no lock file
    TeacherStore.open(store.path, store_key([teacher], data, WORKER_SETTINGS), verify="full")


def test_two_builders_of_one_store_at_once_build_it_once(tmp_path, tiny_teachers, synthetic_images):
    data, counts, stores = synthetic_images(20), [0, 0], [None, None]
    teachers = [_count(t, counts, i) for i, t in enumerate(_frozen_pair(tiny_teachers))]
    settings = StoreSettings(views=2, augmentation="crop")

    def run(index):
        stores[index] = open_or_build_store([teachers[index]], data, settings, root=tmp_path, batch_size=4)

    threads = [threading.Thread(target=run, args=(index,)) for index in (0, 1)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert sorted(counts) == [0, 5 * 2] and stores[0].path == stores[1].path  # 5 batches × 2 views, once
    assert [p.name for p in tmp_path.iterdir()] == [stores[0].path.name]


def _frozen_pair(tiny_teachers):
    """Two FrozenTeachers of the same weights (one store key), counted apart."""
    config, pair = resolve_model_data_config(timm.create_model("resnet8_cifar")), []
    for _ in range(2):
        model = timm.create_model("resnet8_cifar", num_classes=7)
        model.load_state_dict(tiny_teachers[0].state_dict())
        pair.append(FrozenTeacher(model, config, student_map_size=(8, 8)))
    return pair


def test_store_paths_that_are_files_are_one_line_from_the_api_and_the_cli(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory, capsys
):
    from feed_hf import FeedTrainer

    (tmp_path / "plain").write_text("")
    config = feed_config_factory(tmp_path / "run", teacher_store=True, teacher_store_dir=str(tmp_path / "plain"))
    with pytest.raises(StoreFolderError, match=f"teacher_store_dir {tmp_path / 'plain'} is a file, not a folder"):
        FeedTrainer(teachers=tiny_teachers, args=config, train_dataset=synthetic_images(8))
    teacher, data = _worker_teacher(), synthetic_images(8)
    (tmp_path / "stores").mkdir()
    (tmp_path / "stores" / store_fingerprint(store_key([teacher], data, WORKER_SETTINGS))).write_text("")
    with pytest.raises(StoreFolderError, match=r"teacher store .* is a file, not a store folder; delete it"):
        open_or_build_store([teacher], data, WORKER_SETTINGS, root=tmp_path / "stores")
    argv = ["--teacher_store", "true", "--teacher_store_dir", str(tmp_path / "plain"), "--augmentation", "false"]
    teacher = tmp_path / "teacher"
    timm.models.save_for_hf(timm.create_model("resnet8_cifar", num_classes=10), teacher, safe_serialization=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["parallel", *tiny_argv(tmp_path / "cli", "--teachers", str(teacher), *argv)])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and error.startswith("feed-hf: error: teacher_store_dir") and "is a file" in error


# ---- the crops follow the run's seed (issue 22, item 5) ----


def test_the_stores_crops_follow_the_runs_seed_unless_pinned(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    from feed_hf import FeedTrainer

    def store_of(seed, pinned=None):
        config = feed_config_factory(
            tmp_path / f"run{seed}{pinned}", seed=seed, teacher_store_seed=pinned, batch_augmentation="crop_flip",
            teacher_store=True, teacher_store_views=2, teacher_store_dir=str(tmp_path / f"stores{pinned}"),
        )  # fmt: skip
        return FeedTrainer(
            teachers=tiny_teachers, args=config, train_dataset=synthetic_images(16)
        ).teacher_feature_cache

    first, second = store_of(0), store_of(1)
    assert first.settings.seed == 0 and second.settings.seed == 1 and first.paths != second.paths
    images, views = torch.arange(16).repeat_interleave(2), torch.arange(2).repeat(16)
    assert not all(
        torch.equal(a, b)
        for a, b in zip(first.augmentation(images, views), second.augmentation(images, views), strict=True)
    )
    pinned = [store_of(seed, pinned=7) for seed in (0, 1)]
    assert pinned[0].paths == pinned[1].paths and pinned[0].settings.seed == 7
