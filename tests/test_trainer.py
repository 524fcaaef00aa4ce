import json
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from transformers import AutoModelForImageClassification

from feed_hf import FeedStudent, FeedTrainer
from feed_hf.publishing.export import export_file


def _clone_state(module):
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _changed(before, module, prefix=""):
    after = module.state_dict()
    return {name for name, tensor in before.items() if name.startswith(prefix) and not torch.equal(tensor, after[name])}


@pytest.fixture
def two_teacher_trainer(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    args = feed_config_factory(tmp_path / "run", save_strategy="steps", save_steps=2)
    return FeedTrainer(
        teachers=tiny_teachers,
        args=args,
        train_dataset=synthetic_images(64),
        eval_dataset=synthetic_images(32, seed=1),
        class_names=["a", "b", "c", "d", "e"],
    )


def test_two_teacher_run_trains_student_and_connectors_not_teachers(two_teacher_trainer):
    trainer = two_teacher_trainer
    assert isinstance(trainer.model, FeedStudent) and len(trainer.model.connectors) == 2
    model_before, teachers_before = _clone_state(trainer.model), _clone_state(trainer.teachers)
    trainer.train()
    assert _changed(model_before, trainer.model, "student.conv1")
    for index in range(2):
        assert _changed(model_before, trainer.model, f"connectors.{index}.")
    assert not _changed(teachers_before, trainer.teachers)  # weights and BatchNorm running stats
    assert not any(m.training for teacher in trainer.teachers for m in teacher.modules())


def test_logs_each_loss_term_and_eq1_adds_up(two_teacher_trainer):
    trainer = two_teacher_trainer
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss/ce" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert entry["feed/loss"] == pytest.approx(500 * (entry["feed/loss_t0"] + entry["feed/loss_t1"]), rel=1e-4)
        assert entry["loss"] == pytest.approx(entry["loss/ce"] + entry["feed/loss"], rel=1e-3)


def test_record_states_optimizer_steps_and_image_passes(two_teacher_trainer):
    trainer = two_teacher_trainer
    trainer.train()  # 64 images, batch 16 (the factory's), 1 epoch: 4 steps, 64 image passes
    record = json.loads((Path(trainer.args.output_dir) / "results.json").read_text())
    assert record["compute"] == {
        "optimizer_steps": trainer.state.global_step,
        "image_passes": 64 * round(trainer.state.epoch),
        "image_passes_from": "epochs x train images",
    }
    assert trainer.state.global_step == 4


def test_evaluation_reports_accuracy_without_running_teachers(two_teacher_trainer):
    trainer = two_teacher_trainer
    calls = []
    for teacher in trainer.teachers:
        teacher.register_forward_hook(lambda *_: calls.append(1))
    metrics = trainer.evaluate()
    assert calls == []
    assert 0 <= metrics["eval_top1"] <= 100 and metrics["eval_top5"] == 100.0  # 5 classes: top-5 is everything
    trainer.train()
    assert len(calls) == 2 * 4  # two teachers, four training steps


def test_export_is_the_bare_student_and_reloads_in_timm_and_transformers(two_teacher_trainer, tmp_path):
    trainer = two_teacher_trainer
    trainer.train()
    export_dir = tmp_path / "export"
    trainer.save_model(str(export_dir))
    assert sorted(p.name for p in export_dir.iterdir() if not p.name.startswith(".")) == [
        "README.md",  # the card and the record, from the Trainer's state (issue 12)
        "config.json",
        "feed_config.json",
        "model.safetensors",
        "results.json",
    ]
    tensors = safetensors.torch.load_file(export_dir / "model.safetensors")
    assert set(tensors) == set(timm.create_model("resnet8_cifar", num_classes=5).state_dict())
    # kept with the export, outside what a plain upload of the folder takes (issue 19, item 12)
    connectors = safetensors.torch.load_file(export_file(export_dir, "feed_connectors.safetensors"))
    assert set(connectors) == set(trainer.model.connectors.state_dict())  # kept apart, for analysis only
    config = json.loads((export_dir / "config.json").read_text())
    assert "num_classes" not in config.get("model_args", {}) and config["label_names"] == list("abcde")
    feed_config = json.loads((export_dir / "feed_config.json").read_text())
    assert feed_config["feed_beta"] == [500.0, 500.0] and len(feed_config["resolved_teachers"]) == 2

    student = trainer.student.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = student(x)
        timm_model = timm.create_model(f"local-dir:{export_dir}", pretrained=True).eval()
        torch.testing.assert_close(timm_model(x), expected)
        hf_model = AutoModelForImageClassification.from_pretrained(export_dir).eval()
        torch.testing.assert_close(hf_model(pixel_values=x).logits, expected)
    assert hf_model.config.id2label[2] == "c"
    fresh = timm.create_model("resnet8_cifar", num_classes=5)
    assert sum(p.numel() for p in timm_model.parameters()) == sum(p.numel() for p in fresh.parameters())


def test_resume_from_checkpoint_restores_connectors(
    two_teacher_trainer, tiny_teachers, synthetic_images, feed_config_factory, tmp_path
):
    two_teacher_trainer.train()
    uninterrupted = _clone_state(two_teacher_trainer.model)
    checkpoint = tmp_path / "run" / "checkpoint-2"
    saved = safetensors.torch.load_file(checkpoint / "model.safetensors")
    assert any(name.startswith("connectors.1.") for name in saved)

    resumed = FeedTrainer(
        teachers=tiny_teachers,
        args=feed_config_factory(tmp_path / "resumed", save_strategy="steps", save_steps=2),
        train_dataset=synthetic_images(64),
    )
    resumed.train(resume_from_checkpoint=str(checkpoint))  # steps 3-4 from the step-2 state
    assert not _changed(uninterrupted, resumed.model)  # connectors included, bit for bit


def test_builds_student_and_teachers_from_config_alone(tmp_path, synthetic_images, feed_config_factory):
    teacher_dirs = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        teacher = timm.create_model("resnet8_cifar", num_classes=5)
        path = tmp_path / f"teacher{seed}.safetensors"
        safetensors.torch.save_file(teacher.state_dict(), path)
        teacher_dirs.append(f"resnet8_cifar={path}")
    args = feed_config_factory(tmp_path / "run", teachers=teacher_dirs, feed_beta=[100.0, 300.0], max_steps=2)
    trainer = FeedTrainer(args=args, train_dataset=synthetic_images(32))
    assert trainer.feed_betas == [100.0, 300.0]
    trainer.train()
    entry = next(e for e in trainer.state.log_history if "feed/loss" in e)
    assert entry["feed/loss"] == pytest.approx(100 * entry["feed/loss_t0"] + 300 * entry["feed/loss_t1"], rel=1e-4)


def test_logit_kd_baseline_has_no_connectors(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    teachers = [timm.create_model("resnet8_cifar", num_classes=5) for _ in range(2)]
    args = feed_config_factory(tmp_path / "run", feed_beta=[0.0], kd_weight=1.0, max_steps=2)
    trainer = FeedTrainer(teachers=teachers, args=args, train_dataset=synthetic_images(32))
    assert len(trainer.model.connectors) == 0
    trainer.train()
    entry = next(e for e in trainer.state.log_history if "loss/kd" in e)
    assert entry["loss"] == pytest.approx(entry["loss/ce"] + entry["loss/kd"], rel=1e-3)
    assert "feed/loss" not in entry


def test_teacher_of_another_width_and_resolution(tmp_path, synthetic_images, feed_config_factory):
    # A WRN-16-2 teacher read at its 16×16 stage (64 channels) for a ResNet-8 student's 8×8 final map.
    teacher = timm.create_model("wrn_16_2_cifar", num_classes=11)
    args = feed_config_factory(tmp_path / "run", teacher_feature_indices=[2], max_steps=2)
    trainer = FeedTrainer(teachers=[teacher], args=args, train_dataset=synthetic_images(32))
    connector = trainer.model.connectors[0]
    assert connector[0].in_channels == 64 and connector[-2].out_channels == 64
    assert trainer.teachers[0].feature_shape == (64, 16, 16) and trainer.teachers[0].compare_size == (8, 8)
    trainer.train()


def test_student_module_without_config_name(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    student = timm.create_model("resnet14_cifar", num_classes=5)
    args = feed_config_factory(tmp_path / "run", student=None, max_steps=1)
    trainer = FeedTrainer(model=student, teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16))
    assert trainer.student is student
    trainer.train()


def test_missing_student_and_labels_are_explained(tmp_path, synthetic_images, feed_config_factory):
    with pytest.raises(ValueError, match="FeedConfig.student is not set"):
        FeedTrainer(args=feed_config_factory(tmp_path, student=None), train_dataset=synthetic_images(8))
    with pytest.raises(ValueError, match="num_labels is unknown"):
        FeedTrainer(args=feed_config_factory(tmp_path, num_labels=None), train_dataset=synthetic_images(8))
    with pytest.raises(TypeError, match="FeedConfig"):
        FeedTrainer(args=None)


def test_step_decay_multiplies_the_rate_at_each_epoch_milestone(tmp_path, feed_config_factory, synthetic_images):
    args = feed_config_factory(
        tmp_path,
        max_steps=-1,
        num_train_epochs=3,
        lr_scheduler_type="constant",
        lr_decay_epochs=[1, 2],
        lr_decay_rate=0.1,
        learning_rate=0.1,
        logging_steps=1,
    )
    trainer = FeedTrainer(args=args, train_dataset=synthetic_images(32))  # 2 steps per epoch
    trainer.train()
    rates = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    # the rate each step trained with: epoch 1 (steps 1-2) at 0.1, epoch 2 at ×0.1, epoch 3 at ×0.01
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
