"""A teacher that cannot teach is refused (issue 18, item 7): non-finite weights at load, non-finite maps at once."""

import math

import pytest
import timm
import torch
from recipe_helpers import tiny_argv
from timm.data import resolve_model_data_config
from timm.models import save_for_hf

from feed_hf import FeedTrainer
from feed_hf.store.cache import IndexedDataset, TeacherFeatureCache
from feed_hf.store.reader import StoreSettings, open_or_build_store
from feed_hf.teachers.frozen import FrozenTeacher, load_teacher_model
from feed_hf_cli import main

CIFAR_CONFIG = resolve_model_data_config(timm.create_model("resnet8_cifar"))


def _teacher(seed=1):
    torch.manual_seed(seed)
    return timm.create_model("resnet8_cifar", num_classes=10)


def _with(tensor_name, value):
    teacher = _teacher()
    with torch.no_grad():
        dict([*teacher.named_parameters(), *teacher.named_buffers()])[tensor_name].view(-1)[0] = value
    return teacher


@pytest.mark.parametrize(
    ("tensor_name", "value"),
    [("bn1.running_var", math.inf), ("layer1.0.bn1.running_mean", -math.inf), ("conv1.weight", math.nan)],
)
def test_non_finite_weights_or_statistics_are_refused_by_name_at_load(tensor_name, value, tmp_path):
    message = rf"its weights hold non-finite values \({tensor_name}: 1 of \d+ values NaN or Inf\)"
    with pytest.raises(ValueError, match=message):
        FrozenTeacher(_with(tensor_name, value), CIFAR_CONFIG)
    save_for_hf(_with(tensor_name, value), tmp_path / "teacher", safe_serialization=True)
    with pytest.raises(ValueError, match=message):  # from a folder, as the CLI loads it
        FrozenTeacher(load_teacher_model(str(tmp_path / "teacher")), CIFAR_CONFIG, name=f"teacher 0 ({tmp_path})")


def test_cli_refuses_a_teacher_with_infinite_batch_norm_statistics(tmp_path, capsys):
    save_for_hf(_with("bn1.running_var", math.inf), tmp_path / "teacher", safe_serialization=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["parallel", *tiny_argv(tmp_path / "run", "--teachers", str(tmp_path / "teacher"))])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and "bn1.running_var: 1 of 16 values NaN or Inf" in error
    assert error.startswith(f"feed-hf: error: teacher 0 ({tmp_path / 'teacher'}): its weights hold non-finite")
    assert not (tmp_path / "run" / "model.safetensors").exists()


def _overflowing():
    """Finite weights whose maps overflow float32: what only the first batch can show."""
    teacher = _teacher()
    with torch.no_grad():
        teacher.conv1.weight.fill_(1e37)
    return teacher


def test_non_finite_maps_on_the_first_batch_stop_the_run_before_the_first_update(
    tmp_path, synthetic_images, feed_config_factory
):
    config = feed_config_factory(tmp_path, stop_on_nonfinite_loss=False)  # this check does not depend on it
    trainer = FeedTrainer(teachers=[_teacher(2), _overflowing()], args=config, train_dataset=synthetic_images(32))
    before = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
    with pytest.raises(FloatingPointError, match=r"teacher 1 \(CifarResNet\): its feature maps on the first training"):
        trainer.train()
    assert trainer.state.global_step == 0
    assert all(torch.equal(before[name], tensor) for name, tensor in trainer.model.state_dict().items())


def test_non_finite_maps_are_never_stored_or_cached(tmp_path, synthetic_images):
    teacher = FrozenTeacher(_overflowing(), CIFAR_CONFIG, name="teacher 0 (overflowing)", student_map_size=(8, 8))
    with pytest.raises(FloatingPointError, match=r"teacher 0 \(overflowing\): its feature maps on images 0\.\.7"):
        open_or_build_store([teacher], synthetic_images(12), StoreSettings(), root=tmp_path, batch_size=8)
    assert not [path for path in tmp_path.iterdir() if path.suffix in (".building", "")]  # nothing half-built
    with pytest.raises(FloatingPointError, match="its feature maps on the training images 0..11"):
        TeacherFeatureCache.build([teacher], IndexedDataset(synthetic_images(12)), 8, torch.device("cpu"), False)


def test_maps_beyond_float16_are_refused_for_a_float16_store(tmp_path, synthetic_images):
    teacher = _teacher()
    with torch.no_grad():
        teacher.conv1.weight.mul_(1e4)  # finite in fp32, beyond 65504
    frozen = FrozenTeacher(teacher, CIFAR_CONFIG, name="teacher 0 (large)", student_map_size=(8, 8))
    with pytest.raises(ValueError, match="exceed float16's range .* set teacher_store_dtype to bfloat16 or float32"):
        open_or_build_store([frozen], synthetic_images(8), StoreSettings(dtype="float16"), root=tmp_path)
    open_or_build_store([frozen], synthetic_images(8), StoreSettings(dtype="bfloat16"), root=tmp_path)
