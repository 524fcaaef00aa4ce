"""Compressed teacher store parts (issue 22, item 1): PCA + int8 codes stored, decoded at replay, within the error."""

import json
import re

import pytest
import timm
import torch
from timm.data import resolve_model_data_config

from feed_hf.method.losses import normalize_feature_map
from feed_hf.store.codec import decode_maps, encode_maps
from feed_hf.store.files import map_safetensors
from feed_hf.store.integrity import StoreIntegrityError
from feed_hf.store.key import StoreSettings, store_key
from feed_hf.store.parts import open_store_parts
from feed_hf.store.reader import TeacherStore
from feed_hf.teachers.frozen import FrozenTeacher

VIEWS = dict(views=2, augmentation="crop_flip")


def _frozen(models):
    student_config = resolve_model_data_config(timm.create_model("resnet8_cifar"))
    return [FrozenTeacher(model, student_config, student_map_size=(8, 8)) for model in models]


def _eq2(stored, exact):
    """Eq. 2 (per-sample L1 sum of the L2-normalised maps) between two maps `[B, C, H, W]`."""
    return (normalize_feature_map(stored) - normalize_feature_map(exact)).abs().flatten(1).sum(1)


def test_compressed_parts_replay_within_the_stated_error_in_fewer_bytes(tmp_path, tiny_teachers, synthetic_images):
    teachers, data = _frozen(tiny_teachers), synthetic_images(40)
    exact = open_store_parts(teachers, data, StoreSettings(dtype="float32", **VIEWS), tmp_path / "exact")
    settings = StoreSettings(compression="pca_int8", energy_share=0.999, **VIEWS)
    compressed = open_store_parts(teachers, data, settings, tmp_path / "codes")
    images, views = torch.arange(40).repeat_interleave(2), torch.arange(2).repeat(40)
    exact_maps = exact.lookup(images, views, torch.device("cpu")).maps
    decoded = compressed.lookup(images, views, torch.device("cpu")).maps
    for teacher, (stored, reference) in enumerate(zip(decoded, exact_maps, strict=True)):
        assert stored.dtype == torch.float32 and stored.shape == reference.shape
        codec = compressed.parts[teacher].codecs[0]  # replay decodes exactly what the codec makes of the fp32 map
        torch.testing.assert_close(stored, decode_maps(encode_maps(reference, codec), codec), rtol=0, atol=1e-5)
        assert float(_eq2(stored, reference).median()) < 0.5, teacher  # measured 0.37 (bf16: 0.054); performance.md
        codes = compressed.parts[teacher].shards[0]["maps_0"]
        assert codes.dtype == torch.uint8 and codes.shape[1] <= reference.shape[1]
        assert codes.numel() < reference.numel() * 2  # fewer bytes than bf16's 2 per value
    assert compressed.paths != exact.paths  # the compression is in the key
    assert "compression" not in store_key(teachers[:1], data, StoreSettings(dtype="float32", **VIEWS))["settings"]
    assert store_key(teachers[:1], data, settings)["settings"]["energy_share"] == 0.999


def test_an_edited_codec_is_refused_by_the_stores_checksums(tmp_path, tiny_teachers, synthetic_images):
    teachers, data = _frozen(tiny_teachers[:1]), synthetic_images(16)
    settings = StoreSettings(compression="pca_int8", **VIEWS)
    (part,) = open_store_parts(teachers, data, settings, tmp_path).parts
    shard = part.path / part.manifest["shards"][0]["file"]
    tensors, _ = map_safetensors(shard, writable=True)
    tensors["codec_scale_0"].mul_(2)
    del tensors
    with pytest.raises(StoreIntegrityError, match="part codec_scale_0"):
        TeacherStore.open(part.path, part.manifest["key"], verify="full")


def test_a_pca_int8_store_trains_and_a_second_run_makes_no_teacher_forward(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    from feed_hf import FeedTrainer

    records = []
    for run in ("first", "second"):
        config = feed_config_factory(tmp_path / run, max_steps=2, teacher_store=True, teacher_store_dtype="pca_int8",
                                     batch_augmentation="crop_flip", teacher_store_views=2,
                                     teacher_store_dir=str(tmp_path / "stores"))  # fmt: skip
        trainer = FeedTrainer(teachers=tiny_teachers, args=config, train_dataset=synthetic_images(24))
        trainer.train()
        records.append(json.loads((tmp_path / run / "results.json").read_text()))
        assert all(entry["loss"] == entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    assert records[0]["teacher_forwards"]["images"] == 2 * (24 + 24 * 2)  # per teacher: codec fit, then the views
    assert records[1]["teacher_forwards"]["images"] == 0 and records[1]["teacher_features"] == "store"


def test_the_runs_energy_share_reaches_the_store_key_and_keeps_fewer_components(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    from feed_hf import FeedTrainer

    kept = {}
    for share in (0.5, 0.999):
        config = feed_config_factory(tmp_path / str(share), max_steps=1, teacher_store=True,
                                     teacher_store_dtype="pca_int8", teacher_store_energy_share=share,
                                     teacher_store_dir=str(tmp_path / "stores"))  # fmt: skip
        trainer = FeedTrainer(teachers=tiny_teachers[:1], args=config, train_dataset=synthetic_images(24))
        (part,) = trainer.teacher_feature_cache.parts
        assert part.manifest["key"]["settings"]["energy_share"] == share
        kept[share] = part.codecs[0].kept_channels
    assert kept[0.5] < kept[0.999]  # two stores side by side, the lower share with fewer kept components
    assert len(list((tmp_path / "stores").iterdir())) == 2


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"teacher_store_dtype": "pca_int8", "teacher_store_energy_share": 0.0}, "must be in (0, 1], got 0.0"),
        ({"teacher_store_dtype": "pca_int8", "teacher_store_energy_share": float("nan")}, "must be in (0, 1]"),
        ({"teacher_store_energy_share": 0.9}, "applies to pca_int8 codes only, but teacher_store_dtype is 'bfloat16'"),
    ],
)
def test_a_bad_or_unused_energy_share_is_refused_by_name(tmp_path, options, named):
    from feed_hf import FeedConfig

    with pytest.raises(ValueError, match=re.escape(named)):
        FeedConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, teacher_store=True, **options)
