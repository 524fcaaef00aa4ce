"""Work done once, not once per rank, and not on what is thrown away (issue 19, item 10)."""

import io
import json
import subprocess
import threading
from pathlib import Path

import datasets
import numpy as np
import pytest
import timm
import torch
from PIL import Image
from test_distributed import launch_command, launch_env
from timm.data import resolve_model_data_config

from feed_hf.data import images
from feed_hf.data.loading import DataArguments, load_image_splits
from feed_hf.store.cache import IndexedDataset, TeacherFeatureCache
from feed_hf.teachers.frozen import FrozenTeacher


@pytest.fixture
def decoded(monkeypatch):
    """How many stored images the decode check opens."""
    count = [0]
    original = images._decodes

    def counting(value):
        count[0] += 1
        return original(value)

    monkeypatch.setattr(images, "_decodes", counting)
    return count


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (value, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _parquet_folder(folder: Path, bad_rows=(), count=40) -> Path:
    features = datasets.Features(image=datasets.Image(), label=datasets.ClassLabel(names=["a", "b"]))
    rows = [{"bytes": b"broken" if i in bad_rows else _png(i), "path": None} for i in range(count)]
    train = datasets.Dataset.from_dict({"image": rows, "label": [i % 2 for i in range(count)]}, features=features)
    train.to_parquet(str(folder / "train.parquet"))
    train.select(range(6)).to_parquet(str(folder / "test.parquet"))
    return folder


def test_the_decode_check_opens_only_the_images_the_run_keeps(decoded):
    splits = load_image_splits(DataArguments(dataset="digits", max_train_samples=64, max_eval_samples=32))
    assert len(splits["train"]) == 64 and len(splits["eval"]) == 32
    assert decoded[0] == 64 + 32  # not the 1,797 digits


def test_a_subset_is_the_seeded_shuffle_of_the_whole_split(tmp_path):
    folder = _parquet_folder(tmp_path)
    splits = load_image_splits(DataArguments(dataset=str(folder), max_train_samples=10), seed=3)
    whole = datasets.load_dataset("parquet", data_files={"train": str(folder / "train.parquet")}, split="train")
    expected = whole.shuffle(seed=3).select(range(10))
    assert [image.getpixel((0, 0))[0] for image in splits["train"]["image"]] == [
        image.getpixel((0, 0))[0] for image in expected["image"]
    ]


def test_skip_tops_a_subset_up_from_the_same_order_and_error_names_only_kept_rows(tmp_path, decoded):
    order = np.random.default_rng(0).permutation(40)
    bad = {int(order[1]), int(order[4])}  # two of the first ten in the seeded order
    folder = _parquet_folder(tmp_path, bad_rows=bad)
    splits = load_image_splits(DataArguments(dataset=str(folder), max_train_samples=10, undecodable_images="skip"))
    values = [image.getpixel((0, 0))[0] for image in splits["train"]["image"]]
    assert values == [int(row) for row in order if row not in bad][:10]  # the next two rows of the order fill in
    assert splits.skipped_images["train"] == 2 and decoded[0] == 12 + 6
    with pytest.raises(ValueError, match=rf"split 'train' has 2 image\(s\).*rows \[{order[1]}, {order[4]}\]"):
        load_image_splits(DataArguments(dataset=str(folder), max_train_samples=10))


def test_the_in_memory_cache_is_computed_in_blocks_and_gathered(tiny_teachers, synthetic_images):
    config = resolve_model_data_config(timm.create_model("resnet8_cifar"))
    data = IndexedDataset(synthetic_images(15))
    teachers = [FrozenTeacher(t, config, student_map_size=(8, 8)) for t in tiny_teachers]
    single = TeacherFeatureCache.build(teachers, data, 4, torch.device("cpu"), with_logits=True)
    barrier, blocks, forwards, caches = threading.Barrier(2), [None, None], [0, 0], [None, None]

    def gather_for(rank):
        def gather(tensor):
            blocks[rank] = tensor
            barrier.wait()
            result = torch.cat(blocks)
            barrier.wait()  # both read before the next tensor is posted
            return result

        return gather

    def run(rank):
        counted = [FrozenTeacher(t, config, student_map_size=(8, 8)) for t in tiny_teachers]
        for teacher in counted:
            teacher.register_forward_hook(lambda m, i, o, r=rank: forwards.__setitem__(r, forwards[r] + len(i[0])))
        caches[rank] = TeacherFeatureCache.build(
            counted, data, 4, torch.device("cpu"), with_logits=True, rank=rank, world_size=2, gather=gather_for(rank)
        )

    threads = [threading.Thread(target=run, args=(rank,)) for rank in (0, 1)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert forwards == [7 * 2, 8 * 2]  # rank 0: images 0..6, rank 1: 7..14, each through both teachers
    for cache in caches:
        for got, want in zip(cache.feature_maps + cache.logits, single.feature_maps + single.logits, strict=True):
            torch.testing.assert_close(got, want)


@pytest.mark.slow  # an accelerate launch of 2 processes: about a minute on this machine
def test_two_ranks_decode_once_and_each_computes_half_the_cache(tmp_path):
    (tmp_path / "data").mkdir()
    folder = _parquet_folder(tmp_path / "data")
    reports = tmp_path / "reports"
    reports.mkdir()
    worker = str(Path(__file__).resolve().parent / "work_once_worker.py")
    command = launch_command(worker, [str(folder), str(tmp_path / "out"), str(reports)], 2)
    env = {**launch_env(), "SHARED_HF_HOME": str(tmp_path / "hf_home")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = [json.loads(path.read_text()) for path in sorted(reports.glob("rank*.json"))]
    assert first["world_size"] == 2 and first["num_train"] == second["num_train"] == 12
    assert first["decoded"] == 12 + 4 and second["decoded"] == 0  # read back from the datasets cache
    assert (first["forwards"], second["forwards"]) == (7, 8)  # 15 images: each rank its block
    assert first["cache_rows"] == second["cache_rows"] == 15 and first["cache_sums"] == second["cache_sums"]
