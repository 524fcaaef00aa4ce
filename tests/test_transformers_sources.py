"""transformers teachers from folders and the Hub: format told apart, pickle refused before download, pinned and
offline, and one line for a model that gives no map, a processor that contradicts it, a licence, a memory limit."""

import json
import shutil
from types import SimpleNamespace

import huggingface_hub
import pytest
import timm
import torch
import transformers
from foundation_fixtures import FAMILIES, SIZE, push_folder, save_family, save_processor

from feed_hf.teachers import memory as memory_estimate
from feed_hf.teachers.licenses import license_verdict
from feed_hf.teachers.sources import HubTeacherError, TeacherSourceError
from feed_hf.transformers_models import teachers as transformers_teachers
from feed_hf.transformers_models.maps import map_layout
from feed_hf.transformers_models.sources import checkpoint_format, folder_checkpoint_format, source_checkpoint_format
from feed_hf.transformers_models.teachers import load_transformers_teacher

PICKLE_REFUSED = r"pickle file \('pytorch_model\.bin'\).*Convert it to model\.safetensors.*teacher_allow_pickle=True"
PIXELS = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))

# The same weights through another call path (hidden states vs the model's own output, another batch layout):
# CPU kernels may block the reductions differently with the thread count, ~6e-8 apart (measured at 1 thread).
SAME_MATH = {"rtol": 1e-5, "atol": 1e-6}


def _same_map(teacher, model) -> None:
    with torch.no_grad():
        expected = model(PIXELS).last_hidden_state[:, 1:].reshape(2, 4, 4, -1).permute(0, 3, 1, 2)
        torch.testing.assert_close(teacher.feature_map(PIXELS), expected, **SAME_MATH)


def _pickle_only(folder, model) -> None:
    """A transformers folder whose weights exist only as pytorch_model.bin (as older Hub repos ship them)."""
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")


def test_timm_and_transformers_folders_are_told_apart(tmp_path):
    save_family(tmp_path / "hf", "vit")
    timm.models.save_for_hf(timm.create_model("resnet8_cifar"), tmp_path / "timm")
    assert folder_checkpoint_format(tmp_path / "hf") == "transformers"
    assert folder_checkpoint_format(tmp_path / "timm") == "timm"
    assert checkpoint_format({"architecture": "resnet50", "model_type": "timm_wrapper"}) == "timm"  # timm loads it
    assert checkpoint_format({"hidden_size": 3}) is None and folder_checkpoint_format(tmp_path / "none") is None


def test_a_spec_says_which_loader_it_needs(loopback_hub, tmp_path):
    save_family(tmp_path / "hf", "convnext")
    timm.models.save_for_hf(timm.create_model("resnet8_cifar"), tmp_path / "timm")
    push_folder(tmp_path / "hf", "tester/f1-format-hf")
    push_folder(tmp_path / "timm", "tester/f1-format-timm")
    assert source_checkpoint_format(f"local-dir:{tmp_path / 'hf'}") == "transformers"
    assert source_checkpoint_format(str(tmp_path / "timm")) == "timm"
    assert source_checkpoint_format("hf-hub:tester/f1-format-hf") == "transformers"
    assert source_checkpoint_format("hf-hub:tester/f1-format-timm@main") == "timm"
    assert source_checkpoint_format("resnet8_cifar") is None and source_checkpoint_format("resnet8_cifar=w.pt") is None


def test_pickle_only_folder_needs_the_opt_in(tmp_path):
    model = save_family(tmp_path, "vit")
    _pickle_only(tmp_path, model)
    with pytest.raises(TeacherSourceError, match=PICKLE_REFUSED):
        load_transformers_teacher(str(tmp_path))
    _same_map(load_transformers_teacher(str(tmp_path), allow_pickle=True), model)


def test_pickle_only_hub_repo_is_refused_before_its_weights_are_downloaded(loopback_hub, tmp_path):
    model = save_family(tmp_path, "vit", seed=1)
    _pickle_only(tmp_path, model)
    push_folder(tmp_path, "tester/f1-pickle-vit")
    with pytest.raises(TeacherSourceError, match=PICKLE_REFUSED):
        load_transformers_teacher("hf-hub:tester/f1-pickle-vit")
    downloads = [path for _, path, _ in loopback_hub.requests_seen if "f1-pickle-vit" in path and ".bin" in path]
    assert downloads == []  # decided from the file list
    _same_map(load_transformers_teacher("hf-hub:tester/f1-pickle-vit", allow_pickle=True), model)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_from_the_hub_is_pinned_offline_and_under_the_pickle_policy(loopback_hub, tmp_path, family):
    model = save_family(tmp_path, family, seed=2)
    sha = push_folder(tmp_path, f"tester/f1-family-{family}")
    with torch.no_grad():
        expected = load_transformers_teacher(str(tmp_path)).feature_map(PIXELS)
        online = load_transformers_teacher(f"hf-hub:tester/f1-family-{family}")
        assert online.pretrained_cfg["hf_hub_id"] == f"tester/f1-family-{family}@{sha}"
        with pytest.MonkeyPatch.context() as offline_mode:
            offline_mode.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
            seen = len(loopback_hub.requests_seen)
            offline = load_transformers_teacher(f"hf-hub:tester/f1-family-{family}@{sha}")
            assert len(loopback_hub.requests_seen) == seen
        for teacher in (online, offline):
            torch.testing.assert_close(teacher.feature_map(PIXELS), expected, **SAME_MATH)
        _pickle_only(tmp_path, model)
        with pytest.raises(TeacherSourceError, match=PICKLE_REFUSED):
            load_transformers_teacher(str(tmp_path))
        pickled = load_transformers_teacher(str(tmp_path), allow_pickle=True)
        torch.testing.assert_close(pickled.feature_map(PIXELS), expected, **SAME_MATH)


def test_hub_teacher_is_pinned_and_loads_offline_from_the_cache(loopback_hub, tmp_path, monkeypatch):
    model = save_family(tmp_path / "repo", "clip", card_license="apache-2.0")  # a full CLIP repo: its vision tower
    sha = push_folder(tmp_path / "repo", "tester/f1-clip")
    teacher = load_transformers_teacher("hf-hub:tester/f1-clip")
    assert teacher.pretrained_cfg["hf_hub_id"] == f"tester/f1-clip@{sha}"
    assert teacher.pretrained_cfg["license"] == "apache-2.0" and type(teacher.model).__name__ == "CLIPVisionModel"
    push_folder(tmp_path / "repo", "tester/f1-clip")  # same files, no new commit: the pin stays
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    seen = len(loopback_hub.requests_seen)
    for spec in (f"hf-hub:tester/f1-clip@{sha}", "hf-hub:tester/f1-clip"):
        offline = load_transformers_teacher(spec)
        assert offline.pretrained_cfg["hf_hub_id"] == f"tester/f1-clip@{sha}"
        with torch.no_grad():
            torch.testing.assert_close(offline.feature_map(PIXELS), teacher.feature_map(PIXELS), rtol=0, atol=0)
    assert len(loopback_hub.requests_seen) == seen  # nothing asked of the Hub
    assert model.config.model_type == "clip"
    with pytest.raises(HubTeacherError, match=r"not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        load_transformers_teacher("hf-hub:tester/f1-never-downloaded")


def test_a_checkpoint_stored_in_bfloat16_is_a_float32_teacher_as_a_timm_one(tmp_path):
    model = save_family(tmp_path, "dinov2")
    model.to(torch.bfloat16).save_pretrained(tmp_path)
    teacher = load_transformers_teacher(str(tmp_path))
    assert {parameter.dtype for parameter in teacher.parameters()} == {torch.float32}
    with torch.no_grad():
        assert teacher.feature_map(PIXELS).dtype == torch.float32  # float32 pixels, as FrozenTeacher feeds them


def test_weights_that_do_not_fill_the_network_are_refused(tmp_path):
    save_family(tmp_path / "small", "vit")
    save_family(tmp_path / "deep", "vit", num_hidden_layers=3)
    shutil.copy(tmp_path / "small" / "model.safetensors", tmp_path / "deep" / "model.safetensors")
    with pytest.raises(TeacherSourceError, match=r"do not fill ViTModel \(\d+ missing.*stay randomly initialised"):
        load_transformers_teacher(str(tmp_path / "deep"))


def test_a_text_model_is_refused_as_giving_no_map(tmp_path):
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    transformers.BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"model type 'bert' \(BertModel\) takes no pixel_values: it is not a vision"):
        load_transformers_teacher(str(tmp_path))


def test_tokens_that_do_not_fill_the_patch_grid_are_refused_by_name():
    vit = transformers.ViTModel(
        transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
    )
    outputs = SimpleNamespace(last_hidden_state=torch.zeros(1, 19, 8))  # 1 class token + 18: no 4x4 grid
    with pytest.raises(ValueError, match=r"model type 'vit'.*cannot form a map: 19 tokens.*18 after dropping 1"):
        map_layout(outputs, vit.embeddings, vit.config, (32, 32), "teacher 0")
    with pytest.raises(ValueError, match=r"model type 'vit'.*no last_hidden_state"):
        map_layout(SimpleNamespace(pooler_output=torch.zeros(1, 8)), vit.embeddings, vit.config, (32, 32), "t")


def test_processor_config_missing_or_contradicting_the_model_is_one_line(tmp_path):
    save_family(tmp_path, "vit", processor=False)
    with pytest.raises(TeacherSourceError, match=r"no preprocessor_config\.json.*does not assume ImageNet"):
        load_transformers_teacher(str(tmp_path))
    save_processor(tmp_path, size=36)
    with pytest.raises(TeacherSourceError, match=r"feeds 36x36 images but config\.json has patch_size=8.*multiple"):
        load_transformers_teacher(str(tmp_path))
    save_processor(tmp_path, size=56, crop=48)  # a multiple of 8, but this ViT only runs at 32
    with pytest.raises(TeacherSourceError, match=r"feeds 48x48 images but config\.json has image_size=32, the only"):
        load_transformers_teacher(str(tmp_path))
    processor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    processor["image_std"] = [0.5, 0.5]
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor))
    with pytest.raises(TeacherSourceError, match=r"image_std=\[0\.5, 0\.5\]; expected 3 numbers each"):
        load_transformers_teacher(str(tmp_path))


@pytest.mark.parametrize("classifier", [False, True])
def test_a_full_clip_repo_is_checked_against_its_vision_config(tmp_path, classifier):
    save_family(tmp_path, "clip", classifier=classifier)  # CLIPConfig: patch size and image size in vision_config
    save_processor(tmp_path, size=40)
    with pytest.raises(TeacherSourceError, match=r"feeds 40x40 images but config\.json has image_size=32, the only"):
        load_transformers_teacher(str(tmp_path))


def test_dinov2_runs_at_its_processor_crop_whatever_its_position_table_size(tmp_path):
    save_family(tmp_path, "dinov2")  # as facebook/dinov2-*: config image_size 518, processor crop 224
    save_processor(tmp_path, size=56, crop=48)
    teacher = load_transformers_teacher(str(tmp_path))
    assert tuple(teacher.pretrained_cfg["input_size"]) == (3, 48, 48) and teacher.pretrained_cfg["crop_pct"] == 48 / 56
    with torch.no_grad():
        assert teacher.feature_map(torch.zeros(1, 3, 48, 48)).shape == (1, 32, 6, 6)


def test_processor_rescale_factor_is_folded_into_mean_and_std(tmp_path):
    save_family(tmp_path, "convnext")
    save_processor(tmp_path, rescale_factor=1 / 127.5, image_mean=[1.0] * 3, image_std=[1.0] * 3)  # [-1, 1] pixels
    teacher = load_transformers_teacher(str(tmp_path))
    assert teacher.pretrained_cfg["mean"] == pytest.approx((0.5,) * 3)
    assert teacher.pretrained_cfg["std"] == pytest.approx((0.5,) * 3)


def test_licence_from_the_card_is_recorded_and_a_no_derivatives_one_logged(tmp_path, caplog):
    save_family(tmp_path, "siglip_vision", card_license="cc-by-nc-nd-4.0")
    with caplog.at_level("WARNING", logger="feed_hf.transformers_models.teachers"):
        teacher = load_transformers_teacher(str(tmp_path))
    assert teacher.pretrained_cfg["license"] == "cc-by-nc-nd-4.0"
    assert "licence cc-by-nc-nd-4.0 forbids derivatives" in caplog.text


@pytest.mark.parametrize(
    ("license_id", "forbids", "known"),
    [
        ("apache-2.0", False, True),
        ("cc-by-nd-4.0", True, True),
        ("cc-by-nc-nd-3.0", True, True),
        ("cc-by-nc-4.0", False, True),
        ("other:my-licence", False, False),
        ("llama-made-up", False, False),
        (None, False, False),
    ],
)
def test_licence_verdicts(license_id, forbids, known):
    verdict = license_verdict(license_id)
    assert (verdict.forbids_derivatives, verdict.known) == (forbids, known) and verdict.note


def test_memory_estimate_on_the_meta_device_follows_a_real_forward():
    config = transformers.ViTConfig(image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=2)
    config.num_attention_heads = 2
    with torch.device("meta"):
        shell = transformers.ViTModel(config)
    small = transformers_teachers.teacher_memory_estimate(shell, (3, 64, 64), 2, torch.float32)
    large = transformers_teachers.teacher_memory_estimate(shell, (3, 64, 64), 16, torch.float32)
    real_model = transformers.ViTModel(config).eval()
    weights = sum(tensor.numel() * 4 for tensor in real_model.state_dict().values())
    assert large.parameter_bytes == small.parameter_bytes == weights
    assert large.activation_bytes > 4 * small.activation_bytes  # grows with the batch
    tracker = memory_estimate._PeakStorage()  # the same accounting on real tensors
    with torch.no_grad(), tracker:
        real_model(torch.randn(16, 3, 64, 64))
    assert abs(large.activation_bytes - tracker.peak) <= 0.1 * tracker.peak


def test_a_teacher_too_large_for_memory_is_refused_before_its_weights_load(tmp_path, monkeypatch):
    save_family(tmp_path, "vit")
    monkeypatch.setattr(memory_estimate, "available_memory_bytes", lambda device=None: 1_000_000)

    def never(*args, **kwargs):
        raise AssertionError("weights were loaded before the memory check")

    monkeypatch.setattr(transformers_teachers, "load_transformers_model", never)
    with pytest.raises(ValueError, match=r"needs about .* GiB .*batch of 4096 at 32x32.*teacher_input_sizes"):
        load_transformers_teacher(str(tmp_path), batch_size=4096)
