import pytest
import safetensors.torch
import timm
import torch

from feed_hf.publishing.export import export_student
from feed_hf.teachers.frozen import FrozenTeacher, load_teacher_model

CIFAR_DATA_CONFIG = {"input_size": (3, 32, 32), "mean": (0.5071, 0.4865, 0.4409), "std": (0.2673, 0.2564, 0.2762)}


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_name_plus_safetensors_checkpoint(tmp_path):
    source = timm.create_model("resnet8_cifar", num_classes=7)
    safetensors.torch.save_file(source.state_dict(), tmp_path / "t.safetensors")
    loaded = load_teacher_model(f"resnet8_cifar={tmp_path / 't.safetensors'}")
    assert loaded.num_classes == 7  # read from the checkpoint's classifier, not the default 100
    assert _same_weights(loaded, source)


def test_pickle_checkpoint_refused_unless_opted_in(tmp_path):
    source = timm.create_model("resnet8_cifar", num_classes=7)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "t.pth")
    with pytest.raises(ValueError, match="pickle.*teacher_allow_pickle=True"):
        load_teacher_model(f"resnet8_cifar={tmp_path / 't.pth'}")
    assert _same_weights(load_teacher_model(f"resnet8_cifar={tmp_path / 't.pth'}", allow_pickle=True), source)


def test_checkpoint_of_wrong_architecture_is_explained(tmp_path):
    safetensors.torch.save_file(timm.create_model("wrn_16_2_cifar").state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="does not fit 'resnet8_cifar'"):
        load_teacher_model(f"resnet8_cifar={tmp_path / 'w.safetensors'}")


def test_exported_folder_and_local_dir(tmp_path):
    source = timm.create_model("resnet8_cifar", num_classes=7).eval()
    export_student(source, tmp_path / "exported", {"teachers": []})
    for spec in (str(tmp_path / "exported"), f"local-dir:{tmp_path / 'exported'}"):
        loaded = load_teacher_model(spec)
        assert _same_weights(loaded, source)


def test_timm_name_without_weights_is_refused():
    with pytest.raises(ValueError, match="no pretrained weights.*resnet56_cifar=path"):
        load_teacher_model("resnet56_cifar")
    with pytest.raises(ValueError, match="neither a timm model name"):
        load_teacher_model("not_a_model_xyz")


def test_frozen_teacher_stays_frozen_and_in_eval():
    teacher = FrozenTeacher(timm.create_model("resnet8_cifar", num_classes=7), CIFAR_DATA_CONFIG)
    teacher.train()
    assert not teacher.training and not teacher.model.training
    assert not any(p.requires_grad for p in teacher.parameters())
    running_mean = teacher.model.bn1.running_mean.clone()
    feature_map, logits = teacher(torch.randn(8, 3, 32, 32) * 3)
    assert logits is None and not feature_map.requires_grad
    torch.testing.assert_close(teacher.model.bn1.running_mean, running_mean)


def test_teacher_sees_its_own_normalisation():
    model = timm.create_model(
        "resnet8_cifar", pretrained_cfg_overlay=dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    )
    teacher = FrozenTeacher(model.eval(), CIFAR_DATA_CONFIG)
    assert teacher.renormalizes
    pixels = torch.rand(2, 3, 32, 32)  # raw [0, 1] pixels
    mean, std = (torch.tensor(CIFAR_DATA_CONFIG[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    student_input = (pixels - mean) / std
    expected = model.forward_features((pixels - 0.5) / 0.25)
    torch.testing.assert_close(teacher(student_input)[0], expected, rtol=1e-4, atol=1e-5)


def test_teacher_with_the_students_normalisation_is_not_touched():
    teacher = FrozenTeacher(timm.create_model("resnet8_cifar"), CIFAR_DATA_CONFIG)
    assert not teacher.renormalizes


def test_teacher_logits_and_map_for_kd():
    model = timm.create_model("resnet8_cifar", num_classes=7).eval()
    teacher = FrozenTeacher(model, CIFAR_DATA_CONFIG)
    x = torch.randn(2, 3, 32, 32)
    feature_map, logits = teacher(x, with_logits=True)
    torch.testing.assert_close(logits, model(x))
    assert feature_map.shape == (2, 64, 8, 8) and teacher.feature_shape == (64, 8, 8)
