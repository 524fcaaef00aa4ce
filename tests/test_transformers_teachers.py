"""transformers vision models as teachers: per family the map (special tokens dropped), -1 = what the model's own
head reads, earlier hidden states by index, mean/std from the processor, and FrozenTeacher taking the adapter."""

import pytest
import torch
from foundation_fixtures import FAMILIES, MEAN, SIZE, SPECIAL_TOKENS, STD, save_family

from feed_hf.method.features import FeatureTap
from feed_hf.teachers.frozen import FrozenTeacher
from feed_hf.transformers_models.teachers import load_transformers_teacher

PIXELS = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))

# The same weights through another call path (hidden states vs the model's own output, another batch layout):
# CPU kernels may block the reductions differently with the thread count, ~6e-8 apart (measured at 1 thread).
SAME_MATH = {"rtol": 1e-5, "atol": 1e-6}


def _vision(model):
    return getattr(model, "vision_model", model)  # a full CLIP/SigLIP model's tower


def _map_by_hand(family: str, model) -> torch.Tensor:
    """The expected -1 map, sliced from the saved model's own outputs."""
    vision = _vision(model)
    outputs = vision(PIXELS, output_hidden_states=True)
    final = outputs.last_hidden_state
    if family in ("convnext", "convnextv2", "resnet", "regnet"):
        return final
    if family in ("swin", "swinv2"):  # 32 px, patch 2, one merge: 8x8 tokens
        return final.reshape(2, 8, 8, -1).permute(0, 3, 1, 2)
    if family.startswith("clip"):
        final = vision.post_layernorm(final)  # what CLIP's projection head reads (post_layernorm)
    patches = final[:, SPECIAL_TOKENS[family] :]
    assert patches.shape[1] == 16  # 32 px / patch 8: a 4x4 grid once the special tokens are gone
    return patches.reshape(2, 4, 4, -1).permute(0, 3, 1, 2)


# The model's own pooled output, computed from the adapter's -1 features as each family's head reads them.
HEAD_READS = {
    "vit": lambda vision, teacher, features: vision.pooler(features),  # ViTPooler reads the normed class token
    "deit": lambda vision, teacher, features: vision.pooler(features),
    "dinov2": lambda vision, teacher, features: features[:, 0],  # pooler_output: normed class token
    "dinov2_registers": lambda vision, teacher, features: features[:, 0],
    "clip_vision": lambda vision, teacher, features: features[:, 0],  # post_layernorm(class token)
    "clip": lambda vision, teacher, features: features[:, 0],
    "siglip_vision": lambda vision, teacher, features: vision.head(features),  # attention pooling of every token
    "siglip": lambda vision, teacher, features: vision.head(features),
    "convnext": lambda vision, teacher, features: teacher.forward_head(features, pre_logits=True),
    "resnet": lambda vision, teacher, features: teacher.forward_head(features, pre_logits=True),
    "swin": lambda vision, teacher, features: teacher.forward_head(features, pre_logits=True),
    "convnextv2": lambda vision, teacher, features: teacher.forward_head(features, pre_logits=True),
    "regnet": lambda vision, teacher, features: teacher.forward_head(features, pre_logits=True),
    "swinv2": lambda vision, teacher, features: teacher.forward_head(features, pre_logits=True),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_gives_its_map_without_special_tokens_and_its_processor_mean_std(tmp_path, family):
    model = save_family(tmp_path, family)
    teacher = load_transformers_teacher(str(tmp_path))
    assert teacher.pretrained_cfg["mean"] == pytest.approx(MEAN) and teacher.pretrained_cfg["std"] == pytest.approx(STD)
    assert tuple(teacher.pretrained_cfg["input_size"]) == (3, SIZE, SIZE)
    with torch.no_grad():
        expected = _map_by_hand(family, model)
        torch.testing.assert_close(teacher.feature_map(PIXELS), expected, **SAME_MATH)
        torch.testing.assert_close(FeatureTap(teacher, -1).map_only(teacher, PIXELS), expected, **SAME_MATH)


@pytest.mark.parametrize("family", FAMILIES)
def test_minus_one_is_what_the_models_own_head_reads(tmp_path, family):
    model = save_family(tmp_path, family)
    teacher = load_transformers_teacher(f"local-dir:{tmp_path}")
    vision = _vision(model)
    with torch.no_grad():
        pooled = vision(PIXELS).pooler_output.flatten(1)
        from_features = HEAD_READS[family](vision, teacher, teacher.forward_features(PIXELS)).flatten(1)
    torch.testing.assert_close(from_features, pooled, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in ("clip_vision", "siglip_vision")])
def test_image_classification_teachers_give_transformers_own_logits(tmp_path, family):
    model = save_family(tmp_path, family, classifier=True)
    teacher = load_transformers_teacher(str(tmp_path))
    assert teacher.num_classes == model.config.num_labels == 2
    with torch.no_grad():
        torch.testing.assert_close(teacher(PIXELS), model(PIXELS).logits, rtol=1e-5, atol=1e-6)
        features = teacher.forward_features(PIXELS)
        torch.testing.assert_close(teacher.forward_head(features), model(PIXELS).logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["vit", "dinov2_registers", "siglip", "convnext", "swin", "resnet"])
def test_earlier_indices_are_earlier_hidden_states_with_special_tokens_dropped(tmp_path, family):
    model = save_family(tmp_path, family)
    teacher = load_transformers_teacher(str(tmp_path))
    extra = {"output_hidden_states_before_downsampling": True} if family == "swin" else {}
    with torch.no_grad():
        outputs = _vision(model)(PIXELS, output_hidden_states=True, **extra)
        states = outputs.reshaped_hidden_states if family == "swin" else outputs.hidden_states
        expected = states[-2]
        if family in SPECIAL_TOKENS:
            expected = expected[:, SPECIAL_TOKENS[family] :].reshape(2, 4, 4, -1).permute(0, 3, 1, 2)
        tap = FeatureTap(teacher, -2, role="teacher")
        torch.testing.assert_close(tap.map_only(teacher, PIXELS), expected, **SAME_MATH)
        logits, feature_map = tap.logits_and_map(teacher, PIXELS)
    assert len(teacher.feature_info) == len(states) - 1  # one entry per hidden state after the embeddings
    assert teacher.feature_info[-2]["num_chs"] == expected.shape[1]
    assert logits.shape == (2, teacher.head_hidden_size) and torch.equal(feature_map, expected)
    with pytest.raises(ValueError, match=r"feature index 9 is out of range.*valid indices are"):
        FeatureTap(teacher, 9, role="teacher")


def test_frozen_teacher_takes_the_adapter_unchanged(tmp_path):
    save_family(tmp_path / "vit", "vit")
    student_config = {"input_size": (3, 16, 16), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    adapter = load_transformers_teacher(str(tmp_path / "vit"))
    teacher = FrozenTeacher(adapter, student_config, student_map_size=(2, 2), name="teacher 0")
    # A ViT runs at its processor's size (the patch grid is fixed) unless asked otherwise, as a timm ViT does.
    assert teacher.input_size == (SIZE, SIZE) and tuple(teacher.feature_shape) == (32, 4, 4)
    assert teacher.compare_size == (2, 2) and teacher.renormalizes
    student_pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    feature_map, _ = teacher(student_pixels)
    raw = student_pixels * 0.25 + 0.5  # what the teacher sees: its own normalisation, at its own size
    own = (raw - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    own = torch.nn.functional.interpolate(own, size=(SIZE, SIZE), mode="bilinear", antialias=True)
    with torch.no_grad():
        expected = torch.nn.functional.adaptive_avg_pool2d(adapter.feature_map(own), (2, 2))
    torch.testing.assert_close(feature_map, expected, rtol=1e-5, atol=1e-5)
    assert not any(parameter.requires_grad for parameter in adapter.parameters())


def test_dynamic_img_size_lets_a_token_teacher_run_at_the_batch_size(tmp_path):
    save_family(tmp_path, "vit")
    student_config = {"input_size": (3, 16, 16), "mean": MEAN, "std": STD}
    fixed = load_transformers_teacher(str(tmp_path))
    dynamic = load_transformers_teacher(str(tmp_path), model_kwargs={"dynamic_img_size": True})
    assert FrozenTeacher(fixed, student_config).input_size == (SIZE, SIZE)
    teacher = FrozenTeacher(dynamic, student_config)
    assert teacher.input_size is None and tuple(teacher.feature_shape) == (32, 2, 2)  # 16 px / patch 8
    with pytest.raises(ValueError, match=r"\['img_size'\] are not options.*dynamic_img_size=true"):
        load_transformers_teacher(str(tmp_path), model_kwargs={"img_size": 64})
