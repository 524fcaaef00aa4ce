"""A teacher store is verified, not trusted: checksums written at build, checked at every opening (issue 18, item 1)."""

import json
import re

import pytest
import timm
import torch
from recipe_helpers import tiny_argv
from timm.data import resolve_model_data_config
from timm.models import save_for_hf

from feed_hf.store.files import map_safetensors
from feed_hf.store.integrity import SAMPLED_ROWS, StoreIntegrityError
from feed_hf.store.key import store_key
from feed_hf.store.reader import StoreSettings, TeacherStore, open_or_build_store
from feed_hf.teachers.frozen import FrozenTeacher
from feed_hf_cli import main

SETTINGS = StoreSettings(views=3, augmentation="crop_flip", dtype="float32", with_logits=True)


def _frozen(models):
    student_config = resolve_model_data_config(timm.create_model("resnet8_cifar"))
    return [FrozenTeacher(model, student_config, student_map_size=(8, 8)) for model in models]


@pytest.fixture
def built(tmp_path, tiny_teachers, synthetic_images):
    """(teachers, data, store) of a freshly built 2-teacher store of 30 images × 3 views."""
    teachers, data = _frozen(tiny_teachers), synthetic_images(30)
    return teachers, data, open_or_build_store(teachers, data, SETTINGS, root=tmp_path / "stores")


def _shard(store):
    return store.path / store.manifest["shards"][0]["file"]


def _edit(shard, part, change):
    """Change one part of a shard in place, through a shared map (what a bad disk, a script or a copy does)."""
    tensors, _ = map_safetensors(shard, writable=True)
    change(tensors[part])
    del tensors


def _shuffle(rows):
    rows.copy_(rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))])


CORRUPTIONS = {
    "shuffled rows": ("maps_0", _shuffle),
    "zeroed rows": ("maps_1", lambda rows: rows.zero_()),
    "edited logits": ("logits_0", lambda rows: rows.add_(1)),
    "edited crops": ("augmentation", lambda draws: draws[1].add_(1)),
}


def test_a_clean_store_passes_sampled_and_full_verification_and_records_its_checksums(built):
    teachers, data, store = built
    entry = store.manifest["shards"][0]
    assert entry["bytes"] == _shard(store).stat().st_size and len(entry["header_sha256"]) == 64
    TeacherStore.open(store.path, store_key(teachers, data, SETTINGS), verify="full")
    assert 30 * 3 > SAMPLED_ROWS  # the sampled check is a sample here, not every row


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_shuffled_zeroed_or_edited_parts_are_refused_naming_shard_and_part(built, corruption):
    teachers, data, store = built
    part, change = CORRUPTIONS[corruption]
    _edit(_shard(store), part, change)
    key = store_key(teachers, data, SETTINGS)
    for verify in ("sampled", "full"):
        with pytest.raises(StoreIntegrityError, match=rf"{re.escape(str(_shard(store)))}: part {part}, row \d+"):
            TeacherStore.open(store.path, key, verify=verify)
    with pytest.raises(StoreIntegrityError, match="not used. Delete the folder"):  # the run's own entry point
        open_or_build_store(teachers, data, SETTINGS, root=store.path.parent)


def test_one_zeroed_row_is_found_by_the_full_check(built):
    teachers, data, store = built
    _edit(_shard(store), "maps_0", lambda rows: rows[41].zero_())
    with pytest.raises(StoreIntegrityError, match=r"part maps_0, row 41 \(image 13, view 2\).*1 of 90 rows differ"):
        TeacherStore.open(store.path, store_key(teachers, data, SETTINGS), verify="full")


def test_truncated_shard_missing_or_edited_checksums_are_named_by_file(built):
    teachers, data, store = built
    key, shard = store_key(teachers, data, SETTINGS), _shard(store)
    digests = shard.with_name(shard.name + ".digests.safetensors")
    saved_digests, saved_shard = digests.read_bytes(), shard.read_bytes()
    digests.write_bytes(saved_digests[:-8] + bytes(8))
    with pytest.raises(StoreIntegrityError, match=f"checksum file {re.escape(str(digests))} differs"):
        TeacherStore.open(store.path, key)
    digests.unlink()
    with pytest.raises(StoreIntegrityError, match=f"checksum file {re.escape(str(digests))} is missing"):
        TeacherStore.open(store.path, key)
    digests.write_bytes(saved_digests)
    shard.write_bytes(saved_shard[: len(saved_shard) // 2])
    with pytest.raises(StoreIntegrityError, match=rf"shard {re.escape(str(shard))} has \d+ bytes, its build wrote"):
        TeacherStore.open(store.path, key)
    shard.unlink()
    with pytest.raises(StoreIntegrityError, match=f"shard {re.escape(str(shard))} is missing"):
        TeacherStore.open(store.path, key)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda text: text[: len(text) // 2], "JSONDecodeError"),
        (lambda text: json.dumps({**json.loads(text), "shards": []}), "no 'shards'"),
        (
            lambda text: json.dumps({**json.loads(text), "num_images": 31}),
            "the shards hold 30 images, num_images is 31",
        ),
        (lambda text: text.replace('"header_sha256"', '"header"'), "a shard entry lacks one of"),
    ],
)
def test_a_bad_manifest_is_named_by_file(built, edit, problem):
    teachers, data, store = built
    manifest = store.path / "manifest.json"
    manifest.write_text(edit(manifest.read_text()))
    with pytest.raises(StoreIntegrityError, match=rf"manifest {re.escape(str(manifest))} is unreadable.*{problem}"):
        open_or_build_store(teachers, data, SETTINGS, root=store.path.parent)


def test_feed_trainer_refuses_a_corrupted_store_before_any_step(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    from feed_hf import FeedTrainer

    def trainer():
        config = feed_config_factory(
            tmp_path / "run", batch_augmentation="crop_flip", teacher_store=True, teacher_store_views=2,
            teacher_store_dir=str(tmp_path / "s"), overwrite_output_dir=True,
        )  # fmt: skip
        return FeedTrainer(teachers=tiny_teachers, args=config, train_dataset=synthetic_images(24))

    store = trainer().teacher_feature_cache.parts[1]  # teacher 1's part
    _edit(_shard(store), "maps_0", _shuffle)
    with pytest.raises(StoreIntegrityError, match="part maps_0"):
        trainer()


def _teacher_folder(path, seed):
    torch.manual_seed(seed)
    save_for_hf(timm.create_model("resnet8_cifar", num_classes=10), path, safe_serialization=True)
    return str(path)


def test_cli_refuses_a_corrupted_store_in_one_line(tmp_path, capsys):
    store_dir = tmp_path / "stores"
    argv = ["--teachers", _teacher_folder(tmp_path / "t", 1), "--teacher_store", "true"]
    argv += ["--teacher_store_dir", str(store_dir), "--max_steps", "1", "--augmentation", "false"]
    main(["parallel", *tiny_argv(tmp_path / "one", *argv)])
    (store,) = [path for path in store_dir.iterdir() if path.is_dir()]
    shard = next(store.glob("shard-*-of-*.safetensors"))
    _edit(shard, "maps_0", lambda rows: rows.mul_(-1))
    with pytest.raises(SystemExit) as exit_info:
        main(["parallel", *tiny_argv(tmp_path / "two", *argv)])
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the data's progress bars
    assert exit_info.value.code == 2
    assert error.startswith(f"feed-hf: error: teacher store {store} failed verification: shard {shard}: part maps_0")
    assert not (tmp_path / "two" / "model.safetensors").exists()
