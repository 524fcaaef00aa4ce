"""transformers-format models from a folder or the Hub: told apart from timm's format, their weights chosen under
the pickle policy, a Hub repo pinned to a commit (offline: from the cache), the network class chosen, loaded whole.

The same steps as `teacher_sources` takes for timm models, with transformers' files: `config.json` names a
`model_type` (timm's names an `architecture`); weights are `model.safetensors` (or its shards), and a repo with
only `pytorch_model.bin` is refused before anything is downloaded unless the pickle opt-in is given (then read
with `weights_only=True`). A Hub repo is pinned to the commit its file list was read at and every file comes
from that commit. Loading checks what transformers only reports: a weight the network needs that the file lacks
(it would be left at its random initialisation) or has in another shape is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub import constants

from ..teachers.sources import HubTeacherError, TeacherSourceError, _hub_download, resolve_hub_files
from .adapter import check_vision_model, keep_every_patch, vision_backbone
from .preprocessing import PROCESSOR_CONFIG_NAME, processor_data_config

__all__ = [
    "PreparedSource",
    "TransformersSource",
    "checkpoint_format",
    "folder_checkpoint_format",
    "load_transformers_model",
    "model_class_for",
    "prepare_transformers_source",
    "read_transformers_config",
    "resolve_transformers_source",
    "source_checkpoint_format",
]

_SAFE_INDEX = "model.safetensors.index.json"
_PICKLE_INDEX = "pytorch_model.bin.index.json"


@dataclass(frozen=True)
class TransformersSource:
    """A model's files on this machine: `folder` (a local folder or the Hub snapshot of `hub_id` = `ns/name@sha`)."""

    spec: str
    folder: Path
    hub_id: str | None
    use_safetensors: bool


@dataclass(frozen=True)
class PreparedSource:
    """What is known of a source before its weights load: its files, its network class, that network built on the
    meta device (`shell`), and its preprocessing (`data_config`, timm data-config keys from its processor)."""

    source: TransformersSource
    model_class: type
    shell: Any
    data_config: dict[str, Any]


def prepare_transformers_source(
    spec: str, allow_pickle: bool = False, classifier: bool | None = None, role: str = "teacher"
) -> PreparedSource:
    """Resolve `spec`'s files (pickle policy, Hub pin), choose its network class (`model_class_for`), build it on the
    meta device, refuse one that takes no pixels, and read its preprocessing, checked against its vision config."""
    source = resolve_transformers_source(spec, allow_pickle, role)
    model_class, model_config = model_class_for(read_transformers_config(source), classifier)
    with torch.device("meta"):
        shell = model_class(model_config)
    check_vision_model(shell)
    keep_every_patch(shell)  # as the loaded model will: the memory estimate and the size checks see every patch
    vision_config = getattr(model_config, "vision_config", None) or model_config
    data_config = processor_data_config(spec, source.folder, vision_config, vision_backbone(shell))
    return PreparedSource(source, model_class, shell, data_config)


def checkpoint_format(config: Any) -> Literal["timm", "transformers"] | None:
    """`config.json`'s content → whose format it is: timm names an `architecture` (transformers' TimmWrapper
    configs too, which timm loads), transformers a `model_type`; None when it names neither."""
    if not isinstance(config, dict):
        return None
    if isinstance(config.get("architecture"), str):
        return "timm"
    return "transformers" if isinstance(config.get("model_type"), str) else None


def folder_checkpoint_format(folder: str | Path) -> Literal["timm", "transformers"] | None:
    """`checkpoint_format` of `folder/config.json`; None when it is missing or not JSON (the loader says why)."""
    try:
        return checkpoint_format(json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def source_checkpoint_format(spec: str) -> Literal["timm", "transformers"] | None:
    """The format of what a teacher/student spec (without `?key=value`) points at: a folder's config.json, or an
    `hf-hub:` repo's at the revision asked for (downloaded and cached as the loaders do; offline from the cache).
    None for a spec that is neither (a timm name, `NAME=CHECKPOINT`) or a source without a readable config.json,
    which the timm loaders then explain."""
    if spec.startswith("hf-hub:"):
        repo_id, _, revision = spec.removeprefix("hf-hub:").partition("@")
        _, names = resolve_hub_files(spec, repo_id, revision or None)
        if "config.json" not in names:
            return None
        config_path = _hub_download(spec, repo_id, "config.json", revision or constants.DEFAULT_REVISION)
        return folder_checkpoint_format(Path(config_path).parent)
    folder = Path(spec.removeprefix("local-dir:"))
    return folder_checkpoint_format(folder) if folder.is_dir() else None


def _weights_files(spec: str, names: list[str], allow_pickle: bool, role: str) -> tuple[list[str], bool]:
    """(files to fetch, use_safetensors) among a source's top-level `names`: safetensors whenever there are any."""
    top_level = {name for name in names if "/" not in name}
    if "model.safetensors" in top_level:
        return ["model.safetensors"], True
    if _SAFE_INDEX in top_level:
        return [_SAFE_INDEX], True
    pickled = [name for name in ("pytorch_model.bin", _PICKLE_INDEX) if name in top_level]
    if not pickled:
        raise TeacherSourceError(
            f"{role} {spec!r} has no transformers weights (model.safetensors) among {sorted(top_level)}; save it "
            "with save_pretrained (or push_to_hub) of a transformers model"
        )
    if not allow_pickle:
        raise TeacherSourceError(
            f"{role} {spec!r} has its weights only as a pickle file ({pickled[0]!r}), which can run code when "
            "loaded. Convert it to model.safetensors (load it once and save_pretrained), or opt in with "
            "teacher_allow_pickle=True (it is then read with weights_only=True)."
        )
    return [pickled[0]], False


def resolve_transformers_source(spec: str, allow_pickle: bool = False, role: str = "teacher") -> TransformersSource:
    """`hf-hub:ns/name[@rev]`, `local-dir:PATH` or `PATH` → its files here, the pickle policy decided from the file
    list before any weight is downloaded. Offline (HF_HUB_OFFLINE=1) a cached revision loads from the cache."""
    if spec.startswith("hf-hub:"):
        return _hub_source(spec, allow_pickle, role)
    folder = Path(spec.removeprefix("local-dir:"))
    if not (folder / "config.json").is_file():
        raise TeacherSourceError(f"{role} {spec!r}: no config.json in folder {str(folder)!r}; check the path")
    names = [path.name for path in folder.iterdir() if path.is_file()]
    _, use_safetensors = _weights_files(spec, names, allow_pickle, role)
    return TransformersSource(spec, folder, None, use_safetensors)


def _hub_source(spec: str, allow_pickle: bool, role: str) -> TransformersSource:
    repo_id, _, revision = spec.removeprefix("hf-hub:").partition("@")
    sha, names = resolve_hub_files(spec, repo_id, revision or None)
    if "config.json" not in names:
        raise HubTeacherError(f"{role} {spec!r}: repo {repo_id!r} has no config.json at {sha[:12]}; it holds no model")
    weights, use_safetensors = _weights_files(spec, names, allow_pickle, role)
    # By the name asked for, so the cache records the ref too and an offline rerun of the same spec finds it.
    config_path = Path(_hub_download(spec, repo_id, "config.json", revision or constants.DEFAULT_REVISION))
    if config_path.parent.name != sha:
        raise HubTeacherError(f"{role} {spec!r}: repo {repo_id!r} got a new commit while loading; retry")
    for name in [n for n in (PROCESSOR_CONFIG_NAME, "README.md") if n in names] + weights:
        _hub_download(spec, repo_id, name, sha)
    if weights[0].endswith(".index.json"):  # the shards the index names
        index = json.loads((config_path.parent / weights[0]).read_text(encoding="utf-8"))
        for shard in sorted(set(index.get("weight_map", {}).values())):
            _hub_download(spec, repo_id, shard, sha)
    return TransformersSource(spec, config_path.parent, f"{repo_id}@{sha}", use_safetensors)


def read_transformers_config(source: TransformersSource) -> Any:
    """The transformers config of `source` (`AutoConfig`), or one line saying why it is not one."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.folder)
    except (OSError, ValueError, KeyError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TeacherSourceError(
            f"{source.spec!r}: config.json does not describe a transformers model ({detail}); repair it, or update "
            "transformers if its model_type is newer than this version"
        ) from None


def model_class_for(config: Any, classifier: bool | None = None) -> tuple[type, Any]:
    """(transformers class, the config it is built from) for a vision network described by `config`.

    `classifier`: True for an image-classification model (a student), False for the bare network, None for what
    the checkpoint is (its `architectures` name an `…ForImageClassification`: that, else the bare network). A
    vision-language config (CLIP, SigLIP, …) gives its vision tower alone.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING, MODEL_MAPPING

    if classifier is None:
        classifier = any(name.endswith("ForImageClassification") for name in config.architectures or ())
    if classifier:
        if type(config) in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING:
            return _mapped_class(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING, config), config
        tower = "Vision" in type(config).__name__
        hint = " (a vision tower: load the full vision-language repo, e.g. a CLIPConfig; it has one)" if tower else ""
        raise ValueError(
            f"model type {config.model_type!r} has no image-classification model in transformers{hint}; use it as a "
            "label-free backbone (num_labels=0) or pick a family AutoModelForImageClassification loads"
        )
    vision = getattr(config, "vision_config", None)
    if vision is not None and type(vision) in MODEL_MAPPING:
        return _mapped_class(MODEL_MAPPING, vision), vision
    if type(config) in MODEL_MAPPING:
        return _mapped_class(MODEL_MAPPING, config), config
    raise ValueError(f"model type {config.model_type!r}: transformers' AutoModel loads no network for it")


def _mapped_class(mapping: Any, config: Any) -> type:
    """The class an auto mapping gives `config`; of several (DeiT's), the one its `architectures` names, else the
    first, as transformers' Auto classes choose."""
    classes = mapping[type(config)]
    if not isinstance(classes, (list, tuple)):
        return classes
    by_name = {cls.__name__: cls for cls in classes}
    return next((by_name[name] for name in config.architectures or () if name in by_name), classes[0])


def load_transformers_model(
    source: TransformersSource, model_class: type, allowed_missing: tuple[str, ...] = (), role: str = "teacher"
) -> Any:
    """`model_class` with the weights of `source`, in float32 and eval mode (as a timm model: reduced precision is
    FEED's autocast option, not the checkpoint's storage dtype); refused when a weight it needs is missing (other
    than names starting with `allowed_missing`) or has another shape."""
    model, info = model_class.from_pretrained(
        source.folder,
        use_safetensors=source.use_safetensors,
        weights_only=True,
        output_loading_info=True,
        dtype=torch.float32,
    )
    missing = [key for key in info.get("missing_keys", ()) if not key.startswith(allowed_missing)]
    resized = list(info.get("mismatched_keys", ()))
    if missing or resized:
        example = missing[0] if missing else resized[0]
        raise TeacherSourceError(
            f"{role} {source.spec!r}: its weights do not fill {model_class.__name__} ({len(missing)} missing, "
            f"{len(resized)} of another shape, e.g. {example!r}); those would stay randomly initialised. Use the "
            "repo these weights belong to, or fix config.json"
        )
    return model.eval()
