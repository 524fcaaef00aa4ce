"""Any timm teacher at any resolution (issue 13 items 2, 5, 6, 7): sizes, kwargs, feature maps, KD, revisions."""

import json

import pytest
import timm
import torch
from conftest import HUB_TOKEN
from huggingface_hub import HfApi

from feed_hf import FeedTrainer
from feed_hf.method.features import FeatureTap, probe_feature_shape
from feed_hf.publishing.export import FEED_CONFIG_NAME
from feed_hf.runs.analysis import load_feed_run
from feed_hf.teachers.frozen import FrozenTeacher, TeacherSourceError, fixed_input_size, load_teacher_model
from feed_hf.teachers.spec_kwargs import split_model_kwargs
from feed_hf.training.config.readouts import teacher_input_size

STUDENT_32 = {"input_size": (3, 32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
STUDENT_64 = {**STUDENT_32, "input_size": (3, 64, 64)}


def _tiny_vit(seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", depth=1, num_classes=7, **kwargs).eval()


def _push(model, folder, repo_id: str, **model_args) -> str:
    timm.models.save_for_hf(model, folder, model_args=model_args or None, safe_serialization=True)
    api = HfApi(token=HUB_TOKEN)
    api.create_repo(repo_id, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=folder).oid


# ---- 13.5: index -1 is the map forward_features returns, for every family ----------------------------------------

FAMILIES = [
    ("vit_tiny_patch16_224", dict(img_size=32, depth=1), (192, 2, 2)),
    ("deit_tiny_patch16_224", dict(img_size=32, depth=1), (192, 2, 2)),
    ("convnext_atto", {}, (320, 1, 1)),
    ("efficientnet_lite0", {}, (1280, 1, 1)),  # conv_head's 1280 channels, not blocks.6's 320
    ("resnet10t", {}, (512, 1, 1)),
    ("regnetx_002", {}, (368, 1, 1)),
    ("mobilenetv3_small_050", {}, (288, 1, 1)),
]


@pytest.mark.parametrize(("name", "kwargs", "shape"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_index_minus_one_is_the_forward_features_map_of_every_family(name, kwargs, shape):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=4, **kwargs).eval()
    x = torch.randn(2, 3, 32, 32)
    tap = FeatureTap(model, index=-1)
    with torch.no_grad():
        logits, feature_map = tap.logits_and_map(model, x)
        features = model.forward_features(x)
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(tap.map_only(model, x), feature_map)
    assert tuple(feature_map.shape[1:]) == shape
    if features.ndim == 3:  # ViT/DeiT: after the final norm, class token dropped, tokens on their grid
        grid = features[:, 1:].reshape(2, *shape[1:], shape[0]).permute(0, 3, 1, 2)
        torch.testing.assert_close(feature_map, grid)
        pre_norm = model.forward_intermediates(x, indices=[0], intermediates_only=True)[0]
        assert not torch.allclose(feature_map, pre_norm)
    else:
        torch.testing.assert_close(feature_map, features)


def test_other_indices_select_feature_info_entries():
    model = timm.create_model("efficientnet_lite0").eval()
    assert probe_feature_shape(model, FeatureTap(model, index=-2), (3, 64, 64))[0] == 112  # blocks.4
    assert probe_feature_shape(model, FeatureTap(model, index=4), (3, 64, 64))[0] == 320  # blocks.6


def test_empty_module_name_and_module_that_is_no_feature_map_are_refused():
    model = timm.create_model("resnet8_cifar").eval()
    with pytest.raises(ValueError, match=r"teacher 0 feature module is '' \(empty\)"):
        FeatureTap(model, module_name="", role="teacher 0")
    with pytest.raises(
        ValueError, match=r"teacher 0 \(module 'global_pool'\): feature map has shape \(1, 64\); FEED needs"
    ):
        probe_feature_shape(model, FeatureTap(model, module_name="global_pool", role="teacher 0"), (3, 32, 32))


def test_index_and_module_selection_mix_across_teachers(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    args = feed_config_factory(
        tmp_path / "run", teacher_feature_indices=[-1, 2], teacher_feature_modules=["", "layer2"], max_steps=1
    )
    trainer = FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16))
    first, second = trainer.teachers
    assert (first.feature_tap.index, first.feature_tap.module_name) == (-1, None)
    assert (second.feature_tap.index, second.feature_tap.module_name) == (None, "layer2")
    assert tuple(first.feature_shape) == (64, 8, 8) and tuple(second.feature_shape) == (32, 16, 16)


# ---- 13.2: each teacher at its own resolution -------------------------------------------------------------------


def test_224px_vit_teaches_a_32px_student(tmp_path, synthetic_images, feed_config_factory):
    vit = _tiny_vit()
    assert fixed_input_size(vit) == (224, 224)
    args = feed_config_factory(tmp_path / "run", max_steps=2)
    trainer = FeedTrainer(teachers=[vit], args=args, train_dataset=synthetic_images(32))
    teacher = trainer.teachers[0]
    assert teacher.input_size == (224, 224) and tuple(teacher.feature_shape) == (192, 14, 14)
    assert teacher.compare_size == (8, 8)  # the student's 8×8 map; the ViT's 14×14 is pooled down
    pixels = synthetic_images(2)[0]["pixel_values"][None]
    renormalised = pixels * teacher.input_scale + teacher.input_shift  # the ViT's mean/std, then its size
    resized = torch.nn.functional.interpolate(renormalised, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        expected = torch.nn.functional.adaptive_avg_pool2d(FeatureTap(vit).map_only(vit, resized), (8, 8))
    torch.testing.assert_close(teacher(pixels)[0], expected)  # resized on its own, after renormalisation
    trainer.train()
    assert any("feed/loss_t0" in entry for entry in trainer.state.log_history)


def test_vit_rebuilt_at_64px_passed_as_a_module_is_accepted():
    vit = _tiny_vit(img_size=64)
    assert vit.pretrained_cfg["input_size"] == (3, 224, 224)  # what the old check read: its cfg, not the model
    teacher = FrozenTeacher(vit, STUDENT_64, student_map_size=(8, 8))
    assert teacher.input_size is None and tuple(teacher.feature_shape) == (192, 4, 4)


def test_teacher_input_sizes_resize_per_teacher_and_conflicts_are_refused():
    convnet = timm.create_model("resnet8_cifar").eval()
    teacher = FrozenTeacher(convnet, STUDENT_32, input_size=64, student_map_size=(8, 8))
    assert teacher.input_size == (64, 64) and tuple(teacher.feature_shape) == (64, 16, 16)
    assert teacher(torch.zeros(2, 3, 32, 32))[0].shape == (2, 64, 8, 8)
    with pytest.raises(ValueError, match=r"teacher 1 only accepts 224x224 inputs .* teacher_input_sizes asks 64"):
        FrozenTeacher(_tiny_vit(), STUDENT_32, name="teacher 1", input_size=64)


def test_teacher_that_cannot_take_the_size_is_one_line():
    vit = _tiny_vit()
    vit.patch_embed.img_size = None  # a model whose fixed size cannot be read: the probe forward finds it
    with pytest.raises(ValueError, match=r"teacher cannot take \(3, 32, 32\) inputs .*teacher_input_sizes"):
        FrozenTeacher(vit, STUDENT_32)


def test_a_convnet_too_deep_for_the_students_size_is_told_its_native_size_only(tmp_path):
    """A stride-32 ConvNeXt runs at the student's 16 px and its downsampling fails: the fix is its native size;
    dynamic_img_size is a token model's option and is not offered to a convnet."""
    from foundation_fixtures import save_family

    from feed_hf.transformers_models.teachers import load_transformers_teacher

    save_family(tmp_path, "convnext")
    student_16 = {"input_size": (3, 16, 16), "mean": (0.5,) * 3, "std": (0.25,) * 3}
    with pytest.raises(
        ValueError, match=r"cannot take \(3, 16, 16\) inputs .*native size \(32\) in teacher_input_sizes$"
    ):
        FrozenTeacher(load_transformers_teacher(str(tmp_path)), student_16)


def test_teacher_input_sizes_is_checked_in_the_config(tmp_path, feed_config_factory):
    with pytest.raises(ValueError, match=r"teacher_input_sizes has 4; each entry is a resolution >= 8"):
        feed_config_factory(tmp_path, teacher_input_sizes=[4])
    with pytest.raises(ValueError, match=r"teacher_input_sizes has 2 values for 3 teachers"):
        feed_config_factory(tmp_path, teachers=["a", "b", "c"], teacher_input_sizes=[0, 64])
    config = feed_config_factory(tmp_path, teachers=["a", "b"], teacher_input_sizes=[224])
    assert [teacher_input_size(config, i, 2) for i in range(2)] == [224, 224]


def test_spec_keyword_arguments_are_parsed():
    assert split_model_kwargs("hf-hub:ns/vit@abc?img_size=64&dynamic_img_size=true&x=1.5,2") == (
        "hf-hub:ns/vit@abc",
        {"img_size": 64, "dynamic_img_size": True, "x": (1.5, 2)},
    )
    assert split_model_kwargs("runs/what?") == ("runs/what?", {})


def test_hub_vit_with_keyword_arguments_in_its_spec(loopback_hub, tmp_path, monkeypatch):
    source = _tiny_vit(seed=5)
    sha = _push(source, tmp_path / "vit", "tester/vit-224", depth=1)
    dynamic = load_teacher_model("hf-hub:tester/vit-224?dynamic_img_size=true")
    assert dynamic.dynamic_img_size and fixed_input_size(dynamic) is None
    torch.testing.assert_close(dynamic.pos_embed, source.pos_embed)
    small = load_teacher_model(f"hf-hub:tester/vit-224@{sha}?img_size=64")
    assert fixed_input_size(small) == (64, 64) and small.pos_embed.shape == (1, 17, 192)  # resampled by timm
    with pytest.raises(TeacherSourceError, match=r"weights do not fit the model built with \{'num_classes': 3\}"):
        load_teacher_model(f"hf-hub:tester/vit-224@{sha}?num_classes=3")  # no head is invented
    headless = load_teacher_model(f"local-dir:{tmp_path / 'vit'}?num_classes=0")
    assert headless.num_classes == 0
    FrozenTeacher(headless, STUDENT_64, student_map_size=(8, 8))  # FEED needs no head
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # pinned + cached: no Hub needed
    assert load_teacher_model(f"hf-hub:tester/vit-224@{sha}?dynamic_img_size=true").dynamic_img_size


# ---- 13.6: KD and teacher heads ---------------------------------------------------------------------------------


def test_logit_kd_with_another_class_count_is_a_setup_error(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    args = feed_config_factory(tmp_path / "run", kd_weight=1.0)
    with pytest.raises(ValueError, match=r"student's 5 classes, but teacher 0 \(CifarResNet\) has 7; set kd_weight=0"):
        FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16))


def test_headless_teacher_teaches_with_feed(tmp_path, synthetic_images, feed_config_factory):
    headless = timm.create_model("resnet8_cifar", num_classes=0)
    trainer = FeedTrainer(
        teachers=[headless], args=feed_config_factory(tmp_path / "run", max_steps=2), train_dataset=synthetic_images(32)
    )
    trainer.train()
    assert any("feed/loss_t0" in entry for entry in trainer.state.log_history)


# ---- 13.7: reproducible teachers --------------------------------------------------------------------------------


def test_analysis_reloads_the_recorded_teacher_revision(loopback_hub, tmp_path, synthetic_images, feed_config_factory):
    torch.manual_seed(11)
    first = timm.create_model("resnet8_cifar", num_classes=5).eval()
    first_sha = _push(first, tmp_path / "v1", "tester/moving-teacher")
    args = feed_config_factory(tmp_path / "run", teachers=["hf-hub:tester/moving-teacher"], max_steps=1)
    FeedTrainer(args=args, train_dataset=synthetic_images(16)).train()
    recorded = json.loads((tmp_path / "run" / FEED_CONFIG_NAME).read_text())["resolved_teachers"][0]
    assert recorded["source"] == f"hf-hub:tester/moving-teacher@{first_sha}"
    torch.manual_seed(12)
    _push(timm.create_model("resnet8_cifar", num_classes=5), tmp_path / "v2", "tester/moving-teacher")  # a new commit
    _, (teacher,), _ = load_feed_run(tmp_path / "run")
    torch.testing.assert_close(teacher.model.state_dict()["fc.weight"], first.state_dict()["fc.weight"])
    assert teacher.model.pretrained_cfg["hf_hub_id"] == f"tester/moving-teacher@{first_sha}"
