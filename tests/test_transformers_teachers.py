"""transformers vision models as teachers: per family the map (special tokens dropped), -1 = what the model's own
head reads, earlier hidden states by index, mean/std from the processor, and FrozenTeacher taking the adapter."""

import logging

import pytest
import torch
import transformers
from foundation_fixtures import (
    FAMILIES,
    HEADLESS_FAMILIES,
    MEAN,
    SIZE,
    SPECIAL_TOKENS,
    STD,
    save_family,
    save_processor,
)

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
    if family == "dinov3_convnext":  # 32 px at stride 32: one position behind the pooled token
        assert patches.shape[1] == 1 and torch.equal(final[:, 0], outputs.pooler_output)
        return patches.reshape(2, 1, 1, -1).permute(0, 3, 1, 2)
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
    "beit": lambda vision, teacher, features: vision.pooler(features),  # layernorm(mean of the patch tokens)
    "data2vec_vision": lambda vision, teacher, features: features[:, 1:].mean(dim=1),  # built without a pooler
    "vit_msn": lambda vision, teacher, features: features[:, 0],  # what its classifier reads (no pooler)
    "dinov3_vit": lambda vision, teacher, features: features[:, 0],  # pooler_output: the normed class token
    "dinov3_convnext": lambda vision, teacher, features: features[:, 0],  # layernorm(mean of the map)
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


def _own_pooled(family: str, outputs) -> torch.Tensor:
    """The model's own pooled output. ViTMSNModel has none: its classifier reads the class token. AutoModel builds
    Data2VecVisionModel without its pooler: the plain patch mean (what BEiT's pooler averages before its norm)."""
    if family == "vit_msn":
        return outputs.last_hidden_state[:, 0]
    if family == "data2vec_vision":
        assert outputs.pooler_output is None
        return outputs.last_hidden_state[:, 1:].mean(dim=1)
    return outputs.pooler_output


@pytest.mark.parametrize("family", FAMILIES)
def test_minus_one_is_what_the_models_own_head_reads(tmp_path, family):
    model = save_family(tmp_path, family)
    teacher = load_transformers_teacher(f"local-dir:{tmp_path}")
    vision = _vision(model)
    with torch.no_grad():
        pooled = _own_pooled(family, vision(PIXELS)).flatten(1)
        from_features = HEAD_READS[family](vision, teacher, teacher.forward_features(PIXELS)).flatten(1)
    torch.testing.assert_close(from_features, pooled, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in HEADLESS_FAMILIES])
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


def test_a_conv_network_returning_tokens_gives_its_stage_maps_at_any_size(tmp_path):
    """DINOv3 ConvNeXt: last_hidden_state is layernorm(cat(mean, map)) as tokens; -1 drops the pooled token and lays
    the rest on the stride-32 grid at whatever size it runs, earlier indices are its stage maps as they are."""
    model = save_family(tmp_path, "dinov3_convnext")
    teacher = load_transformers_teacher(str(tmp_path))
    assert teacher.dynamic_img_size and teacher.num_prefix_tokens == 1
    pixels = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(2))  # a 3x2 grid, not square
    with torch.no_grad():
        outputs = model(pixels, output_hidden_states=True)
        expected = outputs.last_hidden_state[:, 1:].reshape(2, 3, 2, -1).permute(0, 3, 1, 2)
        torch.testing.assert_close(FeatureTap(teacher, -1).map_only(teacher, pixels), expected, **SAME_MATH)
        torch.testing.assert_close(teacher.feature_map(pixels), expected, **SAME_MATH)
        stage = FeatureTap(teacher, -2, role="teacher").map_only(teacher, pixels)
        torch.testing.assert_close(stage, outputs.hidden_states[-2], **SAME_MATH)
        pooled = teacher.forward_head(teacher.forward_features(pixels), pre_logits=True)
        torch.testing.assert_close(pooled, outputs.pooler_output, **SAME_MATH)


def test_the_adapter_keeps_the_mode_the_model_was_loaded_in(tmp_path):
    """Checking an unknown family's head must not leave a loaded (eval) model in training mode: dropout and batch
    statistics would change its outputs from one call to the next."""
    save_family(tmp_path, "dinov3_vit")
    teacher = load_transformers_teacher(str(tmp_path))
    assert not teacher.training and not any(module.training for module in teacher.modules())


def test_an_mae_encoder_keeps_every_patch_in_order(tmp_path, caplog):
    """ViTMAE masks 75 % of the patches at random and shuffles the rest (its pre-training); with mask_ratio 0, as its
    docs advise for features, it still shuffles them: a teacher map would change from call to call. The adapter keeps
    every patch on its grid, says so, and the map is the encoder's own with the patches in order."""
    torch.manual_seed(0)
    config = transformers.ViTMAEConfig(
        image_size=SIZE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    assert config.mask_ratio == 0.75
    transformers.ViTMAEModel(config).save_pretrained(tmp_path)
    save_processor(tmp_path)
    with caplog.at_level(logging.WARNING):
        teacher = load_transformers_teacher(str(tmp_path)).eval()
    assert "masked 75% of the patches" in caplog.text
    reference = transformers.ViTMAEModel.from_pretrained(tmp_path, mask_ratio=0.0).eval()
    with torch.no_grad():
        first, second = teacher.feature_map(PIXELS), teacher.feature_map(PIXELS)
        in_order = reference(PIXELS, noise=torch.arange(16.0).expand(2, 16)).last_hidden_state
    assert torch.equal(first, second)
    torch.testing.assert_close(first, in_order[:, 1:].reshape(2, 4, 4, -1).permute(0, 3, 1, 2), **SAME_MATH)
