"""Summary terms, per-teacher distances and balancing wired into FeedConfig/FeedTrainer: defaults are FEED's loss
bit for bit; each option changes what it says, is logged per teacher and recorded."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from feed_hf import FeedConfig, FeedTrainer
from feed_hf.method.balancing import balance_features
from feed_hf.method.losses import feed_distance, feed_loss
from feed_hf.method.summary_features import SummaryConnector
from feed_hf.training.label_free import cross_entropy_term

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _trainer(tmp_path, feed_config_factory, synthetic_images, tiny_teachers, **overrides):
    settings = dict(feed_beta=[1.0, 2.0], max_steps=2, **overrides)
    args = feed_config_factory(tmp_path / "run", **settings)
    return FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(32))


def _reference_summary(teacher, pixels):
    """The teacher's summary by hand: its own head's input, pooled as its head pools it (pre-logits)."""
    model = teacher.model
    return model.forward_head(model.forward_features(teacher.prepare_input(pixels)), pre_logits=True).float()


def _batch(synthetic_images):
    data = synthetic_images(8, seed=3)
    return {"pixel_values": data.pixels, "labels": data.labels}


def test_a_default_run_computes_the_pre_change_loss_bit_for_bit(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers
):
    trainer = _trainer(tmp_path, feed_config_factory, synthetic_images, tiny_teachers)
    model, inputs = trainer.model.train(), _batch(synthetic_images)
    loss = trainer.compute_loss(model, inputs)
    # The code before the agglomeration options (trainer.compute_loss at main ca89d27): CE + feed_loss.
    outputs = model(inputs["pixel_values"])
    teacher_maps, _ = trainer.teacher_outputs(inputs["pixel_values"])
    expected, _ = cross_entropy_term(outputs.logits, inputs["labels"], 0.0)
    weighted, _ = feed_loss(outputs.connected_feature_maps, teacher_maps, [1.0, 2.0], 1, "mean")
    assert torch.equal(loss, expected + weighted)
    assert not hasattr(model, "summary_connectors") or not len(model.summary_connectors)
    assert all(getattr(teacher, "balance", None) is None for teacher in trainer.teachers)


def test_summary_terms_train_their_connectors_and_are_logged_per_teacher(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers
):
    trainer = _trainer(
        tmp_path,
        feed_config_factory,
        synthetic_images,
        tiny_teachers,
        feed_summary_weight=[0.5, 1.0],
        feed_summary_distance=["cosine"],
        logging_steps=1,
    )
    connectors = trainer.model.summary_connectors
    assert len(connectors) == 2 and all(isinstance(c, SummaryConnector) for c in connectors)
    before = [p.detach().clone() for p in connectors.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, connectors.parameters(), strict=True))
    logged = next(entry for entry in trainer.state.log_history if "feed/summary_t1" in entry)
    assert {"feed/summary", "feed/summary_t0", "feed/summary_t1"} <= set(logged)
    trainer.save_model()
    feed = json.loads((tmp_path / "run" / "feed_config.json").read_text())
    assert feed["feed_summary_weight"] == [0.5, 1.0] and feed["feed_summary_distance"] == ["cosine"]


@pytest.mark.parametrize("method", ["standardize", "phi_s"])
def test_balancing_is_fitted_once_applied_to_the_maps_and_recorded(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers, method
):
    trainer = _trainer(
        tmp_path, feed_config_factory, synthetic_images, tiny_teachers, feed_balance=method, feed_balance_samples=16
    )
    balances = [teacher.balance for teacher in trainer.teachers]
    assert all(b.method == method and b.info["sample_images"] == "16" for b in balances)
    # On the fitting sample, the balanced maps have unit variance per channel (standardize) / dimension (phi_s).
    pixels = synthetic_images(32).pixels[:16]
    for teacher, balance in zip(trainer.teachers, balances, strict=True):
        vectors = balance_features(teacher(pixels)[0], balance).permute(0, 2, 3, 1).reshape(-1, balance.num_channels)
        kept = vectors.var(dim=0, unbiased=False) > 1e-6
        torch.testing.assert_close(
            vectors.var(dim=0, unbiased=False)[kept], torch.ones(int(kept.sum())), atol=1e-3, rtol=1e-3
        )
    trainer.train()
    trainer.save_model()
    feed = json.loads((tmp_path / "run" / "feed_config.json").read_text())
    assert feed["feed_balance"] == method
    assert [t["balance"]["method"] for t in feed["resolved_teachers"]] == [method, method]


def test_a_per_teacher_map_distance_replaces_eq_2_for_that_teacher_only(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers
):
    trainer = _trainer(
        tmp_path, feed_config_factory, synthetic_images, tiny_teachers, feed_map_distance=["feed_l1", "smooth_l1"]
    )
    model, inputs = trainer.model.train(), _batch(synthetic_images)
    loss = trainer.compute_loss(model, inputs)
    outputs = model(inputs["pixel_values"])
    teacher_maps, _ = trainer.teacher_outputs(inputs["pixel_values"])
    connected = outputs.connected_feature_maps
    expected = F.cross_entropy(outputs.logits, inputs["labels"]) + feed_distance(connected[0], teacher_maps[0])
    expected = (
        expected + 2.0 * F.smooth_l1_loss(connected[1], teacher_maps[1], reduction="none").flatten(1).mean(1).mean()
    )
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"feed_map_distance": ["l2"]}, "feed_map_distance entry 'l2'"),
        ({"feed_summary_weight": [-1.0]}, "feed_summary_weight must be finite"),
        ({"feed_balance": "zca"}, "feed_balance='zca'"),
    ],
)
def test_bad_agglomeration_options_are_refused_by_name(tmp_path, overrides, named):
    with pytest.raises(ValueError, match=named):
        FeedConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, **overrides)


def test_label_free_eval_loss_is_the_training_objective_with_balance_and_summaries(
    tmp_path, feed_config_factory, tiny_teachers
):
    class Unlabelled(torch.utils.data.Dataset):
        def __init__(self, n: int) -> None:
            self.pixels = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))

        def __len__(self) -> int:
            return len(self.pixels)

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            return {"pixel_values": self.pixels[index]}

    args = feed_config_factory(
        tmp_path / "run",
        num_labels=0,
        feed_beta=[1.0, 2.0],
        feed_balance="standardize",
        feed_balance_samples=8,
        feed_summary_weight=[0.5],
        max_steps=1,
    )
    trainer = FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=Unlabelled(16), eval_dataset=Unlabelled(8))
    model, pixels = trainer.model.eval(), Unlabelled(8).pixels
    loss = trainer.compute_loss(model, {"pixel_values": pixels})
    with torch.no_grad():
        _, student_map = model.feature_tap.logits_and_map(model.student, pixels)
        teacher_maps, _ = trainer.teacher_outputs(pixels)
        expected = sum(
            beta * feed_distance(connector(student_map), balance_features(target, teacher.balance))
            for beta, connector, target, teacher in zip(
                [1.0, 2.0], model.connectors, teacher_maps, trainer.teachers, strict=True
            )
        )
        pooled = student_map.mean(dim=(2, 3))
        for connector, teacher in zip(model.summary_connectors, trainer.teachers, strict=True):
            target = _reference_summary(teacher, pixels)
            expected = expected + 0.5 * feed_distance(connector(pooled), target)
    torch.testing.assert_close(loss, expected)


def test_summary_connectors_are_built_for_model_init_students_too(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers
):
    import timm

    args = feed_config_factory(
        tmp_path / "run", feed_beta=[1.0, 2.0], feed_summary_weight=[1.0], max_steps=1, logging_steps=1
    )
    trainer = FeedTrainer(
        model_init=lambda: timm.create_model("resnet8_cifar", num_classes=5),
        teachers=tiny_teachers,
        args=args,
        train_dataset=synthetic_images(16),
    )
    trainer.train()
    assert len(trainer.model.summary_connectors) == 2
    assert any("feed/summary_t1" in entry for entry in trainer.state.log_history)


@pytest.mark.parametrize("kd_weight", [0.0, 1.0])
def test_summary_terms_take_the_summary_from_the_same_teacher_forward_as_the_map(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers, kd_weight
):
    """With summary terms on (and KD on or off), one training step runs each teacher's trunk once, not twice."""
    trainer = _trainer(
        tmp_path,
        feed_config_factory,
        synthetic_images,
        tiny_teachers,
        feed_summary_weight=[0.5],
        kd_weight=kd_weight,
        num_labels=7,  # KD compares class scores: the tiny teachers' 7
    )
    calls = []
    for index, teacher in enumerate(trainer.teachers):
        trunk = teacher.model.forward_features

        def counted(pixels, _trunk=trunk, _index=index):
            calls.append(_index)
            return _trunk(pixels)

        teacher.model.forward_features = counted
    batch = _batch(synthetic_images)
    trainer.model.train()
    trainer.compute_loss(trainer.model, batch)
    assert sorted(calls) == list(range(len(trainer.teachers)))
    with torch.no_grad():
        for teacher in trainer.teachers:
            feature_map, logits, summary = teacher(batch["pixel_values"], kd_weight > 0, True)
            alone, alone_logits = teacher(batch["pixel_values"], kd_weight > 0)
            torch.testing.assert_close(summary, _reference_summary(teacher, batch["pixel_values"]))
            torch.testing.assert_close(feature_map, alone)
            assert (logits is None) == (kd_weight == 0)
            if logits is not None:
                torch.testing.assert_close(logits, alone_logits)


@pytest.mark.parametrize("balance", ["standardize", "phi_s"])
def test_balancing_on_a_teacher_store_reads_the_stored_maps_and_a_reusing_run_makes_no_teacher_forward(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers, balance
):
    from feed_hf.method.balancing import fit_balance
    from feed_hf.method.feature_moments import ChannelMoments

    records, trainers = [], []
    for run in ("first", "second"):
        config = feed_config_factory(tmp_path / run, feed_beta=[1.0, 2.0], max_steps=1, teacher_store=True,
                                     teacher_store_views=2, batch_augmentation="crop_flip",
                                     teacher_store_dir=str(tmp_path / "stores"), feed_balance=balance,
                                     feed_balance_samples=16)  # fmt: skip
        trainer = FeedTrainer(teachers=tiny_teachers, args=config, train_dataset=synthetic_images(24))
        trainer.train()
        trainers.append(trainer)
        records.append(json.loads((tmp_path / run / "results.json").read_text()))
    assert records[0]["teacher_forwards"]["images"] == 2 * 24 * 2  # the store's views only: none for the statistics
    assert records[1]["teacher_forwards"]["images"] == 0
    store = trainers[1].teacher_feature_cache
    for index, teacher in enumerate(trainers[1].teachers):
        moment = ChannelMoments(teacher.feature_shape[0])
        moment.update(store.stored_maps(torch.arange(16), torch.device("cpu"))[index])
        expected = fit_balance(moment, balance)
        torch.testing.assert_close(teacher.balance.mean, expected.mean)
        torch.testing.assert_close(teacher.balance.scale, expected.scale)
        assert teacher.balance.info["maps_from"] == "the teacher store or cache"
        assert teacher.balance.info["sample_images"] == "16"


def test_balancing_with_cached_teacher_features_fits_on_the_cache_without_more_forwards(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers
):
    forwards = {}
    for balance in ("none", "standardize"):
        config = feed_config_factory(tmp_path / balance, feed_beta=[1.0, 2.0], max_steps=1,
                                     cache_teacher_features=True, feed_balance=balance,
                                     feed_balance_samples=16)  # fmt: skip
        trainer = FeedTrainer(teachers=tiny_teachers, args=config, train_dataset=synthetic_images(24))
        forwards[balance] = trainer.teacher_forwards.images
    assert forwards["standardize"] == forwards["none"] == 2 * 24  # the cache's own pass, nothing for the statistics
    assert all(teacher.balance.info["maps_from"] == "the teacher store or cache" for teacher in trainer.teachers)


def _summary_config(factory, folder, **store_options):
    return factory(folder, feed_beta=[1.0, 2.0], feed_summary_weight=[0.5, 1.0], max_steps=2, logging_steps=1,
                   **store_options)  # fmt: skip


def test_summary_terms_on_cached_teachers_use_the_cached_summaries_and_no_live_forward(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers
):
    live = FeedTrainer(teachers=tiny_teachers, args=_summary_config(feed_config_factory, tmp_path / "live"),
                       train_dataset=synthetic_images(24))  # fmt: skip
    cached = FeedTrainer(
        teachers=tiny_teachers,
        args=_summary_config(feed_config_factory, tmp_path / "cached", cache_teacher_features=True),
        train_dataset=synthetic_images(24),
    )
    assert cached.teacher_forwards.images == 2 * 24  # the cache's one pass gave maps and summaries
    cached.model.load_state_dict(live.model.state_dict())  # same student, connectors and summary connectors
    data = synthetic_images(24)
    inputs = {"pixel_values": data.pixels[:8], "labels": data.labels[:8], "sample_index": torch.arange(8)}
    for index, teacher in enumerate(cached.teachers):  # the cached summary is the teacher's own, row by row
        stored = cached.teacher_feature_cache.lookup(torch.arange(8), torch.device("cpu")).summaries[index]
        torch.testing.assert_close(stored, _reference_summary(teacher, data.pixels[:8]))
    torch.testing.assert_close(
        cached.compute_loss(cached.model.train(), inputs), live.compute_loss(live.model.train(), inputs)
    )
    assert cached.teacher_forwards.images == 2 * 24  # compute_loss read the cache: no teacher ran
    before = [p.detach().clone() for p in cached.model.summary_connectors.parameters()]
    cached.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, cached.model.summary_connectors.parameters(), strict=True))
    assert any("feed/summary_t1" in entry for entry in cached.state.log_history)


def test_summary_terms_on_a_teacher_store_replay_each_views_summary_and_a_reuse_makes_no_teacher_forward(
    tmp_path, feed_config_factory, synthetic_images, tiny_teachers
):
    from feed_hf.store.key import StoreSettings, settings_facts

    store_options = dict(teacher_store=True, teacher_store_views=2, batch_augmentation="crop_flip",
                         teacher_store_dir=str(tmp_path / "stores"), teacher_store_dtype="float32")  # fmt: skip
    records, trainers = [], []
    for run in ("first", "second"):
        trainer = FeedTrainer(
            teachers=tiny_teachers,
            args=_summary_config(feed_config_factory, tmp_path / run, **store_options),
            train_dataset=synthetic_images(24),
        )
        trainer.train()
        trainers.append(trainer)
        records.append(json.loads((tmp_path / run / "results.json").read_text()))
    assert records[0]["teacher_forwards"]["images"] == 2 * 24 * 2  # one forward per view: map and summary
    assert records[1]["teacher_forwards"]["images"] == 0 and records[1]["teacher_features"] == "store"
    assert any("feed/summary_t0" in entry for entry in trainers[1].state.log_history)
    store, pixels = trainers[1].teacher_feature_cache, synthetic_images(24).pixels[:6]
    torch.manual_seed(0)
    replayed, targets = store.replay(pixels, torch.arange(6))
    assert not torch.equal(replayed, pixels)  # cropped/flipped views, each with the summary of what it shows
    for teacher, summary in zip(trainers[1].teachers, targets.summaries, strict=True):
        torch.testing.assert_close(summary, _reference_summary(teacher, replayed), rtol=1e-4, atol=1e-5)
    from feed_hf.store.card import part_summary

    assert part_summary("f", store.parts[0].manifest)["storage"] == "float32 + summaries float32"  # the Hub card
    # Without summary terms the key is the one stores had before this option: they are found as they were.
    assert "with_summaries" not in settings_facts(StoreSettings())
    assert settings_facts(StoreSettings(with_summaries=True))["with_summaries"] is True
