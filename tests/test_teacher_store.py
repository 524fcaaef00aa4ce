"""The persistent teacher store: replayed crops, one teacher forward per (image, view), shared by ranks and runs."""

import collections
import json
import threading

import pytest
import safetensors.torch
import timm
import torch
from timm.data import resolve_model_data_config

from feed_hf.data.transforms import draw_crop_flip, random_crop_flip, replay_crop_flip
from feed_hf.store.files import allocate_safetensors, map_safetensors
from feed_hf.store.key import store_fingerprint, store_key
from feed_hf.store.parts import ComposedStore
from feed_hf.store.reader import StaleTeacherStoreError, StoreSettings, TeacherStore, open_or_build_store
from feed_hf.teachers.frozen import FrozenTeacher


def _frozen(models):
    student_config = resolve_model_data_config(timm.create_model("resnet8_cifar"))
    return [FrozenTeacher(model, student_config, student_map_size=(8, 8)) for model in models]


def _count_forwards(teachers) -> list[int]:
    """Images through each teacher (a hook on its forward), kept in a list the caller reads."""
    counts = [0] * len(teachers)
    for index, teacher in enumerate(teachers):

        def hook(module, inputs, output, index=index):
            counts[index] += inputs[0].shape[0]

        teacher.register_forward_hook(hook)
    return counts


class _Unlabeled(torch.utils.data.Dataset):
    def __init__(self, pixels):
        self.pixels = pixels

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, index):
        return {"pixel_values": self.pixels[index]}  # no labels: the store never needs them


def test_replay_gives_exactly_the_pixels_random_crop_flip_draws():
    pixels = torch.randn(6, 3, 32, 32)
    torch.manual_seed(3)
    live = random_crop_flip(pixels, 4, flip=True)
    torch.manual_seed(3)
    top, left, flipped = draw_crop_flip(6, 4, flip=True)
    assert flipped.any() and not flipped.all()
    torch.testing.assert_close(replay_crop_flip(pixels, top, left, flipped, 4), live, rtol=0, atol=0)


def test_store_files_are_plain_safetensors_filled_in_place(tmp_path):
    path = tmp_path / "shard.safetensors"
    written = allocate_safetensors(path, {"maps": (torch.bfloat16, (5, 2, 3)), "index": (torch.int64, (5,))})
    written["maps"][1:3] = 1.5
    written["index"].copy_(torch.arange(5))
    del written
    loaded = safetensors.torch.load_file(path)
    assert (
        loaded["maps"].dtype == torch.bfloat16 and loaded["maps"][1:3].eq(1.5).all() and loaded["maps"][0].eq(0).all()
    )
    mapped, _ = map_safetensors(path)
    torch.testing.assert_close(mapped["index"], torch.arange(5))


def test_store_without_augmentation_trains_exactly_like_live_teachers(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    from feed_hf import FeedTrainer

    def final_state(**store):
        config = feed_config_factory(tmp_path / f"run{len(store)}", max_steps=3, **store)
        trainer = FeedTrainer(teachers=tiny_teachers, args=config, train_dataset=synthetic_images(48))
        trainer.train()
        return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}, trainer

    live, _ = final_state()
    stored, trainer = final_state(
        teacher_store=True, teacher_store_dir=str(tmp_path / "s"), teacher_store_dtype="float32"
    )
    assert isinstance(trainer.teacher_feature_cache, ComposedStore)
    assert all(isinstance(part, TeacherStore) for part in trainer.teacher_feature_cache.parts)
    for name, tensor in live.items():
        torch.testing.assert_close(stored[name], tensor, rtol=1e-5, atol=1e-6)


def test_teacher_forwards_are_images_times_views_and_a_second_run_makes_none(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory, monkeypatch
):
    from feed_hf import FeedTrainer

    counts = collections.Counter()
    original_forward = FrozenTeacher.forward

    def counting_forward(self, pixel_values, *args, **kwargs):
        counts[self.name] += len(pixel_values)
        return original_forward(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(FrozenTeacher, "forward", counting_forward)
    for run, beta in enumerate((100.0, 300.0)):  # a β sweep: the second run reuses the first run's store
        config = feed_config_factory(
            tmp_path / f"run{run}",
            feed_beta=[beta],
            batch_augmentation="crop_flip",
            teacher_store=True,
            teacher_store_views=3,
            teacher_store_dir=str(tmp_path / "store"),
        )
        trainer = FeedTrainer(teachers=tiny_teachers, args=config, train_dataset=synthetic_images(40))
        trainer.train()
        assert sorted(counts.values()) == [40 * 3, 40 * 3]  # built once, in the first run; training reads it
    assert len(list((tmp_path / "store").iterdir())) == 2  # one part per teacher


def test_each_replayed_view_is_what_the_stored_maps_were_computed_from(tmp_path, tiny_teachers, synthetic_images):
    teachers = _frozen(tiny_teachers)
    settings = StoreSettings(views=4, augmentation="crop_flip", dtype="float32")
    store = open_or_build_store(teachers, synthetic_images(20), settings, root=tmp_path)
    pixels, images = synthetic_images(20).pixels[:8], torch.arange(8)
    torch.manual_seed(0)
    replayed, (maps, _, _) = store.replay(pixels, images)
    assert not torch.equal(replayed, pixels)  # cropped/flipped
    for teacher, stored in zip(teachers, maps, strict=True):
        torch.testing.assert_close(stored, teacher(replayed)[0], rtol=1e-4, atol=1e-5)


def test_simulated_ranks_each_compute_their_block_and_read_the_whole_store(tmp_path, tiny_teachers, synthetic_images):
    data, settings = synthetic_images(30), StoreSettings(views=2, augmentation="crop", with_logits=True)
    single = open_or_build_store(_frozen(tiny_teachers), data, settings, root=tmp_path / "one")
    barrier, stores, per_rank = threading.Barrier(2), [None, None], []

    def rank(index):
        teachers = _frozen(tiny_teachers)
        per_rank.append((index, _count_forwards(teachers)))
        stores[index] = open_or_build_store(
            teachers, data, settings, root=tmp_path / "two", rank=index, world_size=2, barrier=barrier.wait
        )

    threads = [threading.Thread(target=rank, args=(index,)) for index in (0, 1)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert sorted((index, counts) for index, counts in per_rank) == [(0, [30, 30]), (1, [30, 30])]  # 15 images × 2
    images, views = torch.arange(30).repeat_interleave(2), torch.arange(2).repeat(30)
    expected_maps, expected_logits, _ = single.lookup(images, views, torch.device("cpu"))
    for store in stores:
        maps, logits, _ = store.lookup(images, views, torch.device("cpu"))
        assert len(logits) == 2
        for got, want in zip(maps + logits, expected_maps + expected_logits, strict=True):
            torch.testing.assert_close(got.float(), want.float(), rtol=1e-2, atol=1e-2)


def test_a_store_of_other_teachers_is_refused_by_name(tmp_path, tiny_teachers, synthetic_images):
    teachers, data, settings = _frozen(tiny_teachers[:1]), synthetic_images(12), StoreSettings()
    store = open_or_build_store(teachers, data, settings, root=tmp_path)
    retrained = _frozen([timm.create_model("resnet8_cifar", num_classes=7)])
    other_key = store_key(retrained, data, settings)
    assert store_fingerprint(other_key) != store.path.name  # new weights: another folder, never this one
    with pytest.raises(StaleTeacherStoreError, match="teacher 0 weights_sha256"):
        TeacherStore.open(store.path, other_key)
    manifest = json.loads((store.path / "manifest.json").read_text())
    manifest["key"]["data"]["num_images"] = 13  # a store edited or copied from elsewhere
    (store.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StaleTeacherStoreError, match="other data"):
        open_or_build_store(teachers, data, settings, root=tmp_path)


def test_another_preprocessing_gives_another_store(tmp_path, tiny_teachers, synthetic_images):
    data = synthetic_images(12)
    shifted = _Unlabeled(data.pixels + 0.1)
    keys = [
        store_fingerprint(store_key(_frozen(tiny_teachers), d, StoreSettings()))
        for d in (_Unlabeled(data.pixels), shifted)
    ]
    assert keys[0] != keys[1]


def test_store_builds_and_reads_without_labels(tmp_path, tiny_teachers, synthetic_images):
    store = open_or_build_store(
        _frozen(tiny_teachers), _Unlabeled(synthetic_images(10).pixels), StoreSettings(), root=tmp_path
    )
    maps = store.lookup(torch.tensor([9, 0]), torch.tensor([0, 0]), torch.device("cpu")).maps
    assert maps[0].shape == (2, 64, 8, 8) and maps[0].dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"teacher_store_views": 0}, "teacher_store_views must be >= 1"),
        ({"teacher_store": True, "teacher_store_views": 4}, "batch_augmentation is 'none'"),
        ({"teacher_store": True, "cache_teacher_features": True}, "set only one of them"),
    ],
)
def test_store_settings_are_checked(tmp_path, feed_config_factory, overrides, message):
    with pytest.raises(ValueError, match=message):
        feed_config_factory(tmp_path, **overrides)


def test_store_refuses_a_randomly_augmented_training_set(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    from feed_hf import FeedTrainer

    class RandomlyFlipped(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, index):
            item = dict(synthetic_images(16)[index])
            item["pixel_values"] = item["pixel_values"].flip(-1) if torch.rand(()) < 0.5 else item["pixel_values"]
            return item

    torch.manual_seed(0)
    config = feed_config_factory(tmp_path / "run", teacher_store=True, teacher_store_dir=str(tmp_path / "s"))
    with pytest.raises(ValueError, match="teacher_store needs a training set without random augmentation"):
        FeedTrainer(teachers=tiny_teachers, args=config, train_dataset=RandomlyFlipped())
