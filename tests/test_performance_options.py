"""Speed options must not change what is learned: cache, autocast teachers, channels_last, NaN stop."""

from pathlib import Path

import pytest
import torch

from feed_hf import FeedTrainer


def _trainer(tmp_path, teachers, dataset, feed_config_factory, **overrides):
    # one folder per configuration: each training ends with an export, which a second run may not replace
    run = "run-" + "-".join(f"{key}={value}" for key, value in sorted(overrides.items()))
    args = feed_config_factory(tmp_path / run, **{"max_steps": 3, **overrides})
    return FeedTrainer(teachers=teachers, args=args, train_dataset=dataset)


def _final_state(trainer):
    trainer.train()
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_feature_cache_trains_exactly_like_live_teachers(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    live = _final_state(_trainer(tmp_path, tiny_teachers, synthetic_images(48), feed_config_factory))
    cached_trainer = _trainer(
        tmp_path, tiny_teachers, synthetic_images(48), feed_config_factory, cache_teacher_features=True
    )
    calls = []
    for teacher in cached_trainer.teachers:
        teacher.register_forward_hook(lambda *_: calls.append(1))
    cached = _final_state(cached_trainer)
    assert calls == []  # teachers never ran during training: every map came from the cache
    assert cached_trainer.teacher_feature_cache.feature_maps[0].shape == (48, 64, 8, 8)
    for name, tensor in live.items():
        torch.testing.assert_close(cached[name], tensor, rtol=1e-5, atol=1e-6)


class _RandomlyFlipped(torch.utils.data.Dataset):
    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        item = dict(self.base[index])
        if torch.rand(()) < 0.5:
            item["pixel_values"] = item["pixel_values"].flip(-1)
        return item


def test_feature_cache_refuses_random_augmentation(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="without random augmentation"):
        _trainer(
            tmp_path,
            tiny_teachers,
            _RandomlyFlipped(synthetic_images(16)),
            feed_config_factory,
            cache_teacher_features=True,
        )


def test_bf16_teachers_keep_the_loss_in_fp32_and_close(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    trainer = _trainer(tmp_path, tiny_teachers, synthetic_images(16), feed_config_factory, teacher_dtype="bfloat16")
    batch = {"pixel_values": synthetic_images(8).pixels, "labels": synthetic_images(8).labels}
    maps_bf16, _ = trainer.teacher_outputs(batch["pixel_values"])
    assert maps_bf16[0].dtype == torch.bfloat16
    reference = tiny_teachers[0].forward_features(batch["pixel_values"])
    cosine = torch.nn.functional.cosine_similarity(maps_bf16[0].float().flatten(1), reference.flatten(1)).min()
    assert cosine > 0.99
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_channels_last_gives_the_same_loss(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    batch = {"pixel_values": synthetic_images(8).pixels, "labels": synthetic_images(8).labels}
    losses = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        trainer = _trainer(
            tmp_path, tiny_teachers, synthetic_images(16), feed_config_factory, channels_last=channels_last
        )
        trainer.model.train()
        losses.append(trainer.compute_loss(trainer.model, batch).detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-4, atol=1e-5)


def test_nan_loss_stops_at_that_step_naming_the_term_and_teacher(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    trainer = _trainer(
        tmp_path,
        tiny_teachers,
        synthetic_images(64),
        feed_config_factory,
        save_strategy="steps",
        save_steps=1,
        max_steps=4,
    )
    poisoned = {"calls": 0}

    def poison_second_teacher(module, inputs, output):
        poisoned["calls"] += 1
        if poisoned["calls"] >= 2:  # from the second training step on
            return output[0] * float("nan"), output[1]
        return output

    trainer.teachers[1].register_forward_hook(poison_second_teacher)
    with pytest.raises(FloatingPointError, match=r"step 2: .*feed/loss_t1 \(teacher 1: Cifar"):
        trainer.train()
    checkpoints = sorted(p.name for p in Path(trainer.args.output_dir).glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-1"]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
