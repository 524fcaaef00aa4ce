"""Folder, Hub and timm-name teachers: the pickle policy holds for each, and each fails clearly before building."""

import json
import shutil

import huggingface_hub
import pytest
import timm
import torch
from conftest import HUB_TOKEN
from huggingface_hub import HfApi
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from feed_hf.models._common import cifar_cfg
from feed_hf.models.cifar_resnet import CifarResNet
from feed_hf.teachers.frozen import HubTeacherError, TeacherSourceError, load_teacher_model

PICKLE_REFUSED = r"pickle file \('pytorch_model\.bin'\).*Convert it to model\.safetensors.*teacher_allow_pickle=True"

# Two timm names with "pretrained weights" that exist only as a pickle: in a Hub repo, or at a .pth URL.
default_cfgs = generate_default_cfgs(
    {
        "pickle_hub_resnet8_cifar": cifar_cfg(hf_hub_id="tester/pickle-only-pretrained", num_classes=7),
        "pickle_url_resnet8_cifar": cifar_cfg(url="http://127.0.0.1:9/resnet8_cifar.pth"),
    }
)


def _resnet8(variant: str, pretrained: bool, **kwargs) -> CifarResNet:
    kwargs = dict(depth=8, widths=(16, 16, 32, 64), **kwargs)
    return build_model_with_cfg(CifarResNet, variant, pretrained, feature_cfg=dict(feature_cls="getter"), **kwargs)


@register_model
def pickle_hub_resnet8_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _resnet8("pickle_hub_resnet8_cifar", pretrained, **kwargs)


@register_model
def pickle_url_resnet8_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    return _resnet8("pickle_url_resnet8_cifar", pretrained, **kwargs)


@pytest.fixture(scope="module")
def source_model():
    torch.manual_seed(3)
    return timm.create_model("resnet8_cifar", num_classes=7).eval()


def _same_logits(model, source) -> None:
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(pixels), source(pixels), rtol=0, atol=0)


def _timm_folder(model, folder, pickle_only: bool = False, architecture: str | None = None):
    """A timm-format folder (config.json + weights); with `pickle_only` the weights are a torch.save pickle."""
    timm.models.save_for_hf(model, folder, safe_serialization=not pickle_only)
    if architecture is not None:
        config = json.loads((folder / "config.json").read_text())
        config.update(architecture=architecture, model_args={})
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def _push(folder, repo_id: str) -> str:
    api = HfApi(token=HUB_TOKEN)
    api.create_repo(repo_id, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=folder).oid


def _weight_downloads(hub, repo_id: str) -> list[str]:
    return [path for method, path, _ in hub.requests_seen if repo_id in path and path.endswith(".bin")]


# ---- class 7: the pickle policy holds for every teacher source --------------------------------------------------


def test_pickle_only_folder_needs_opt_in_for_every_folder_syntax(tmp_path, source_model):
    folder = _timm_folder(source_model, tmp_path / "teacher=bin", pickle_only=True)
    assert {p.name for p in folder.iterdir()} == {"config.json", "pytorch_model.bin"}
    for spec in (str(folder), f"local-dir:{folder}"):
        with pytest.raises(TeacherSourceError, match=PICKLE_REFUSED):
            load_teacher_model(spec)
        _same_logits(load_teacher_model(spec, allow_pickle=True), source_model)


def test_safetensors_is_preferred_to_a_pickle_beside_it(tmp_path, source_model):
    folder = _timm_folder(source_model, tmp_path / "both")
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle at all: reading it would fail")
    _same_logits(load_teacher_model(f"local-dir:{folder}"), source_model)


def test_pickle_only_hub_repo_needs_opt_in_decided_before_download(loopback_hub, tmp_path, source_model):
    sha = _push(_timm_folder(source_model, tmp_path / "hub", pickle_only=True), "tester/pickle-only-teacher")
    with pytest.raises(TeacherSourceError, match=PICKLE_REFUSED):
        load_teacher_model("hf-hub:tester/pickle-only-teacher")
    assert _weight_downloads(loopback_hub, "tester/pickle-only-teacher") == []  # decided from the file list
    model = load_teacher_model("hf-hub:tester/pickle-only-teacher", allow_pickle=True)
    _same_logits(model, source_model)
    assert model.pretrained_cfg["hf_hub_id"] == f"tester/pickle-only-teacher@{sha}"


def test_timm_name_whose_pretrained_weights_are_a_pickle_needs_opt_in(loopback_hub, tmp_path, source_model):
    folder = tmp_path / "pretrained"
    folder.mkdir()
    torch.save(source_model.state_dict(), folder / "pytorch_model.bin")
    _push(folder, "tester/pickle-only-pretrained")
    with pytest.raises(TeacherSourceError, match=PICKLE_REFUSED):
        load_teacher_model("pickle_hub_resnet8_cifar")
    with pytest.raises(TeacherSourceError, match=r"pickle file \('resnet8_cifar\.pth'\).*teacher_allow_pickle"):
        load_teacher_model("pickle_url_resnet8_cifar")  # refused before any download is tried
    assert _weight_downloads(loopback_hub, "tester/pickle-only-pretrained") == []
    _same_logits(load_teacher_model("pickle_hub_resnet8_cifar", allow_pickle=True), source_model)


# ---- class 9: Hub teachers (and folders) fail clearly, before building a model the weights cannot fill -----------


def test_hub_teacher_missing_repo_bad_revision_and_unreachable_hub(loopback_hub, tmp_path, source_model, monkeypatch):
    _push(_timm_folder(source_model, tmp_path / "ok"), "tester/good-teacher")
    with pytest.raises(HubTeacherError, match=r"'hf-hub:tester/no-such-teacher'.*no model repo.*check the id"):
        load_teacher_model("hf-hub:tester/no-such-teacher")
    with pytest.raises(HubTeacherError, match=r"has no revision 'v9'.*'hf-hub:tester/good-teacher@main'"):
        load_teacher_model("hf-hub:tester/good-teacher@v9")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubTeacherError, match=r"cannot reach the Hub at http://127\.0\.0\.1:9.*HF_ENDPOINT"):
        load_teacher_model("hf-hub:tester/good-teacher")


@pytest.mark.parametrize("architecture", ["vit_huge_patch14_224", "resnet56_cifar"])
def test_config_whose_architecture_does_not_match_the_weights_is_refused_unbuilt(
    loopback_hub, tmp_path, source_model, monkeypatch, architecture
):
    folder = _timm_folder(source_model, tmp_path / "mismatch", architecture=architecture)
    repo_id = f"tester/mismatched-{architecture.replace('_', '-')}"
    _push(folder, repo_id)
    devices = []
    create_model = timm.create_model

    def recording_create_model(*args, **kwargs):
        devices.append(torch.get_default_device().type)
        return create_model(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", recording_create_model)
    for spec in (str(folder), f"local-dir:{folder}", f"hf-hub:{repo_id}"):
        with pytest.raises(TeacherSourceError, match=rf"model\.safetensors does not fit the '{architecture}'.*config"):
            load_teacher_model(spec)
    with pytest.raises(TeacherSourceError, match=rf"does not fit '{architecture}'.*right architecture"):
        load_teacher_model(f"{architecture}={folder / 'model.safetensors'}")
    assert devices and set(devices) == {"meta"}  # compared on the meta device; nothing real was allocated


def test_missing_or_garbled_config_is_one_clear_line(loopback_hub, tmp_path, source_model):
    folder = _timm_folder(source_model, tmp_path / "t")
    config = folder / "config.json"
    config.write_text("{'architecture': resnet8_cifar")
    _push(folder, "tester/garbled-config")
    with pytest.raises(TeacherSourceError, match=r"'hf-hub:tester/garbled-config': config\.json is not valid JSON"):
        load_teacher_model("hf-hub:tester/garbled-config")
    cases = [
        ("{'architecture': resnet8_cifar", r"config\.json is not valid JSON"),
        ("[1, 2]", r"config\.json names no 'architecture'"),
        ('{"architecture": "resnet_9000_cifar"}', r"names architecture 'resnet_9000_cifar', which timm does not"),
        ('{"architecture": "resnet8_cifar", "model_args": {"depth": "eight"}}', r"not describe a buildable"),
    ]
    for text, message in cases:
        config.write_text(text)
        with pytest.raises(TeacherSourceError, match=message):
            load_teacher_model(f"local-dir:{folder}")
    config.unlink()
    _push(folder, "tester/no-config")
    for spec in (str(folder), f"local-dir:{folder}", "hf-hub:tester/no-config"):
        with pytest.raises(TeacherSourceError, match=r"has no config\.json"):
            load_teacher_model(spec)
    with pytest.raises(TeacherSourceError, match=r"does not exist; check the path"):
        load_teacher_model(f"local-dir:{tmp_path / 'nowhere'}")


def test_pinned_hub_teacher_loads_offline_from_the_cache(loopback_hub, tmp_path, source_model, monkeypatch):
    sha = _push(_timm_folder(source_model, tmp_path / "cached"), "tester/cached-teacher")
    load_teacher_model("hf-hub:tester/cached-teacher")  # online once: fills the cache
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    seen = len(loopback_hub.requests_seen)
    for spec in (f"hf-hub:tester/cached-teacher@{sha}", "hf-hub:tester/cached-teacher"):
        model = load_teacher_model(spec)
        _same_logits(model, source_model)
        assert model.pretrained_cfg["hf_hub_id"] == f"tester/cached-teacher@{sha}"
    assert len(loopback_hub.requests_seen) == seen  # nothing asked of the Hub
    with pytest.raises(HubTeacherError, match=r"not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        load_teacher_model("hf-hub:tester/never-downloaded")
    shutil.rmtree(tmp_path / "cached")
