"""Teacher weights from a folder or the Hub, under the pickle policy, checked against the architecture first.

Every source goes through the same three steps: list the files (a folder's entries, the Hub's siblings at
the pinned commit, or the cached snapshot offline), choose the weights file (safetensors whenever present;
a pickle only with `teacher_allow_pickle`), and compare the weights' key names and shapes with the
architecture built on the meta device, so a model the weights cannot fill is never built.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import timm
import torch
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from torch import nn

from ..publishing.files import CONNECTORS_NAME
from .spec_kwargs import adapt_state_dict, split_model_kwargs

__all__ = [
    "HubTeacherError",
    "TeacherSourceError",
    "check_weights_fit",
    "choose_weights_file",
    "load_adapted_state_dict",
    "load_checkpoint_state_dict",
    "load_folder_teacher",
    "load_hub_teacher",
    "pin_hub_revision",
    "pretrained_weights_overlay",
    "resolve_hub_files",
    "split_model_kwargs",
    "weight_shapes",
]

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# timm's own order of preference within each format (timm.models._hub._PREFERRED_FILES), safetensors first.
_SAFETENSORS_NAMES = ("model.safetensors", "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors")
_PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.pth", "model.pth", "open_clip_pytorch_model.bin")
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_NOT_WEIGHTS = (CONNECTORS_NAME,)  # what an export holds beside the model's weights: never the model itself


class TeacherSourceError(ValueError):
    """A teacher whose files cannot give a model: missing or garbled config, no weights, weights of another net."""


class HubTeacherError(TeacherSourceError):
    """A Hub teacher that cannot be resolved: missing repo or revision, Hub unreachable, not in the offline cache."""


def load_adapted_state_dict(
    spec: str, model: nn.Module, state_dict: dict[str, torch.Tensor], model_kwargs: dict[str, Any]
) -> None:
    """Load weights made for the architecture's own config into `model`, built with `model_kwargs`.

    With keyword arguments, timm's own checkpoint filter of the architecture adapts the weights (e.g. a ViT's
    position embedding resampled to a new `img_size`) and a classifier the model dropped (`num_classes=0`) is
    left out; anything else that does not fit is one line naming the keyword arguments.
    """
    if model_kwargs:
        state_dict = adapt_state_dict(model, state_dict)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        if not model_kwargs:
            raise
        detail = str(error).strip().splitlines()[-1].strip()
        raise TeacherSourceError(
            f"teacher {spec!r}: its weights do not fit the model built with {model_kwargs} ({detail}); drop or "
            "change those keyword arguments"
        ) from None


def choose_weights_file(spec: str, names: list[str], allow_pickle: bool) -> str:
    """The weights file to load among a source's top-level file `names`: safetensors whenever there is one."""
    top_level = [name for name in names if "/" not in name and name not in _NOT_WEIGHTS]
    safe = [n for n in _SAFETENSORS_NAMES if n in top_level]
    safe += sorted(n for n in top_level if n.endswith(".safetensors") and n not in safe)
    if safe:
        return safe[0]
    pickles = [n for n in _PICKLE_NAMES if n in top_level]
    pickles += sorted(n for n in top_level if n.endswith(PICKLE_SUFFIXES) and n not in pickles)
    if not pickles:
        raise TeacherSourceError(
            f"teacher {spec!r} has no weights file (model.safetensors) among {sorted(top_level)}; "
            "export it with feed-hf or timm's save_for_hf / push_to_hf_hub"
        )
    _refuse_pickle(spec, pickles[0], allow_pickle)
    return pickles[0]


def load_checkpoint_state_dict(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a weights file; pickle formats only when allowed, and always with `weights_only=True`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        try:
            state_dict = safetensors.torch.load_file(path)
        except safetensors.SafetensorError as error:
            raise _unreadable_safetensors(path, error) from None
    elif path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ValueError(
                f"checkpoint {str(path)!r} is a pickle file, which can run code when loaded. Convert it to "
                "safetensors, or opt in with teacher_allow_pickle=True (it is then read with weights_only=True)."
            )
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle.UnpicklingError, RuntimeError, EOFError, ...
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]  # torch's own is a page long
            raise ValueError(
                f"checkpoint {str(path)!r} could not be read with weights_only=True ({reason}); it holds more than "
                "tensors (maybe code). Convert it to safetensors where it was made, or do not use it"
            ) from None
    else:
        raise ValueError(f"checkpoint {str(path)!r}: unknown format; expected .safetensors or {PICKLE_SUFFIXES}")
    for wrapper_key in ("state_dict", "model"):
        if isinstance(state_dict.get(wrapper_key), dict):
            state_dict = state_dict[wrapper_key]
    return _strip_wrapper_prefixes(state_dict)


def _unreadable_safetensors(path: Path, error: Exception) -> ValueError:
    return ValueError(
        f"checkpoint {str(path)!r} is not a readable safetensors file ({error}); "
        "is it truncated or corrupt? Re-export or re-download it."
    )


def _strip_wrapper_prefixes(state_dict: dict) -> dict:
    """Accept DDP (`module.`) and FeedStudent (`student.`, connectors dropped) checkpoints as plain ones."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    if any(key.startswith("student.") for key in state_dict):
        state_dict = {key.removeprefix("student."): v for key, v in state_dict.items() if key.startswith("student.")}
    return state_dict


def weight_shapes(path: Path, allow_pickle: bool) -> dict[str, tuple[int, ...]]:
    """Key → shape of a weights file; for safetensors from its header alone (no tensor is read)."""
    if path.suffix != ".safetensors":
        state_dict = load_checkpoint_state_dict(path, allow_pickle)
        return {key: tuple(value.shape) for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
    try:
        with safetensors.safe_open(path, framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (safetensors.SafetensorError, OSError) as error:
        raise _unreadable_safetensors(path, error) from None
    return _strip_wrapper_prefixes(shapes)


def check_weights_fit(shapes: dict[str, tuple[int, ...]], model: nn.Module, problem: str, fix: str) -> None:
    """Raise TeacherSourceError unless `shapes` has exactly `model`'s state-dict keys and shapes.

    `model` is meant to live on the meta device: comparing costs no memory, whatever its size.
    """
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    resized = sorted(key for key in expected.keys() & shapes.keys() if expected[key] != shapes[key])
    details = [f"{len(missing)} missing key(s), e.g. {missing[0]!r}"] if missing else []
    details += [f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]!r}"] if unexpected else []
    if resized:
        key = resized[0]
        details.append(f"{len(resized)} size mismatch(es), e.g. {key!r} {shapes[key]} vs {expected[key]} expected")
    if details:
        raise TeacherSourceError(f"{problem} ({'; '.join(details)}). {fix}")


def load_folder_teacher(
    spec: str,
    folder: str | Path,
    allow_pickle: bool,
    weights_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """A timm-format folder (config.json + weights) as a model, checked on the meta device before it is built.

    The weights are checked against the architecture config.json describes; `model_kwargs` (timm.create_model
    keyword arguments) then build the model that is loaded (`load_adapted_state_dict`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TeacherSourceError(f"teacher {spec!r}: folder {str(folder)!r} does not exist; check the path")
    architecture = _read_architecture(spec, folder / "config.json")
    if weights_name is None:
        weights_name = choose_weights_file(spec, [p.name for p in folder.iterdir() if p.is_file()], allow_pickle)
    weights = folder / weights_name
    shapes = weight_shapes(weights, allow_pickle)
    check_weights_fit(
        shapes,
        _build_from_config(spec, folder, architecture, device="meta"),
        f"teacher {spec!r}: {weights_name} does not fit the {architecture!r} that config.json describes",
        "Fix config.json (architecture, num_classes, model_args) or use the folder/repo these weights belong to.",
    )
    model = _build_from_config(spec, folder, architecture, device="cpu", model_kwargs=model_kwargs)
    load_adapted_state_dict(spec, model, load_checkpoint_state_dict(weights, allow_pickle), model_kwargs or {})
    return model


def _read_architecture(spec: str, config_path: Path) -> str:
    """The timm architecture that `config.json` names, or one line saying what is wrong with the file."""
    if not config_path.is_file():
        raise TeacherSourceError(
            f"teacher {spec!r} has no config.json; give a folder or repo exported by feed-hf / timm "
            "(config.json + model.safetensors), or NAME=CHECKPOINT"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TeacherSourceError(
            f"teacher {spec!r}: config.json is not valid JSON ({error}); re-export the teacher or repair the file"
        ) from None
    architecture = config.get("architecture") if isinstance(config, dict) else None
    if not isinstance(architecture, str):
        raise TeacherSourceError(
            f"teacher {spec!r}: config.json names no 'architecture'; it is not a timm config. Re-export the "
            "teacher with feed-hf or timm's save_for_hf"
        )
    if not timm.is_model(architecture):
        raise TeacherSourceError(
            f"teacher {spec!r}: config.json names architecture {architecture!r}, which timm does not know; "
            "import the module that registers it before loading, or fix config.json"
        )
    return architecture


def _build_from_config(
    spec: str, folder: Path, architecture: str, device: str, model_kwargs: dict[str, Any] | None = None
) -> nn.Module:
    # No `pretrained=True`: timm would pick and read the weights file itself, bypassing the policy above.
    try:
        with torch.device(device):
            return timm.create_model(f"local-dir:{folder}", **(model_kwargs or {}))
    except (TypeError, ValueError, KeyError, RuntimeError, AssertionError) as error:
        raise TeacherSourceError(
            f"teacher {spec!r}: config.json does not describe a buildable {architecture!r} "
            f"({type(error).__name__}: {error}); fix its model_args (or the ?key=value keyword arguments) or "
            "re-export the teacher"
        ) from None


def load_hub_teacher(spec: str, allow_pickle: bool, model_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """`hf-hub:ns/name[@revision]` as a model pinned to a commit; the pickle policy is decided before download.

    Offline (HF_HUB_OFFLINE=1) a revision cached by an earlier run loads from the cache, nothing asked of the Hub.
    """
    repo_id, _, revision = spec.removeprefix("hf-hub:").partition("@")
    sha, names = resolve_hub_files(spec, repo_id, revision or None)
    if "config.json" not in names:
        raise HubTeacherError(
            f"teacher {spec!r}: repo {repo_id!r} has no config.json at {sha[:12]}; it is not a timm-format repo. "
            "Push the teacher with feed-hf or timm's push_to_hf_hub"
        )
    weights_name = choose_weights_file(spec, names, allow_pickle)
    # By the name asked for (not the sha), so the cache also records e.g. refs/main and an offline rerun of the
    # same unpinned spec finds this snapshot.
    config_path = _hub_download(spec, repo_id, "config.json", revision or constants.DEFAULT_REVISION)
    if Path(config_path).parent.name != sha:
        raise HubTeacherError(f"teacher {spec!r}: repo {repo_id!r} got a new commit while loading; retry")
    folder = Path(_hub_download(spec, repo_id, weights_name, sha)).parent  # the snapshot folder of that commit
    model = load_folder_teacher(spec, folder, allow_pickle, weights_name, model_kwargs)
    model.pretrained_cfg.pop("file", None)  # a cache path, not the teacher's identity
    model.pretrained_cfg.update(hf_hub_id=f"{repo_id}@{sha}", source="hf-hub")
    return model


def pretrained_weights_overlay(name: str, pretrained_cfg: timm.models.PretrainedCfg, allow_pickle: bool) -> dict:
    """Check where timm reads `name`'s pretrained weights against the pickle policy; pin a Hub source's commit.

    Returns a `pretrained_cfg_overlay` for `timm.create_model`, so the checked commit is the one loaded.
    """
    if pretrained_cfg.hf_hub_id:  # timm prefers the Hub to `url` whenever huggingface_hub is installed
        repo_id, _, revision = pretrained_cfg.hf_hub_id.partition("@")
        sha, names = resolve_hub_files(name, repo_id, revision or None)
        filename = pretrained_cfg.hf_hub_filename or "pytorch_model.bin"
        candidates = [n for n in [*_timm_safe_alternatives(filename), filename] if n in names]
        if not candidates:
            raise TeacherSourceError(
                f"teacher {name!r}: its pretrained weights repo {repo_id!r} holds no {filename!r} at {sha[:12]}; "
                f"give the weights yourself: '{name}=path/to/model.safetensors'"
            )
        _refuse_pickle(name, candidates[0], allow_pickle)
        return {"hf_hub_id": f"{repo_id}@{sha}"}
    location = pretrained_cfg.file or pretrained_cfg.url or ""
    _refuse_pickle(name, location.split("?")[0].rsplit("/", 1)[-1], allow_pickle)
    return {}


def _timm_safe_alternatives(filename: str) -> list[str]:
    """What timm tries before a pickle `filename` on the Hub (timm.models._hub._get_safe_alternatives)."""
    if filename.endswith(".safetensors"):
        return []
    if filename == "open_clip_pytorch_model.bin":
        return ["open_clip_model.safetensors"]
    if filename == "pytorch_model.bin":
        return ["model.safetensors"]
    return [filename.removesuffix(".bin") + ".safetensors"] if filename.endswith(".bin") else []


def _refuse_pickle(spec: str, filename: str, allow_pickle: bool) -> None:
    if not allow_pickle and filename.endswith((*PICKLE_SUFFIXES, ".tar")):
        raise TeacherSourceError(
            f"teacher {spec!r} has its weights only as a pickle file ({filename!r}), which can run code when "
            "loaded. Convert it to model.safetensors, or opt in with teacher_allow_pickle=True (it is then read "
            "with weights_only=True)."
        )


def pin_hub_revision(hub_id: str) -> str:
    """`ns/name[@revision]` → `ns/name@<commit sha>`, so a run records exactly which teacher weights it used.

    Offline (HF_HUB_OFFLINE=1) the commit is read from the local cache.
    """
    repo_id, _, revision = hub_id.partition("@")
    return f"{repo_id}@{resolve_hub_files(f'hf-hub:{hub_id}', repo_id, revision or None)[0]}"


def resolve_hub_files(spec: str, repo_id: str, revision: str | None) -> tuple[str, list[str]]:
    """(commit sha, file names) of a Hub model repo at `revision`: the Hub's list, or the cached snapshot offline."""
    if constants.HF_HUB_OFFLINE:
        return _cached_snapshot_files(spec, repo_id, revision or constants.DEFAULT_REVISION)
    try:
        info = HfApi(endpoint=constants.ENDPOINT).model_info(repo_id, revision=revision)
    except Exception as error:
        raise _hub_error(spec, repo_id, revision, error) or error from None
    return info.sha, [sibling.rfilename for sibling in info.siblings or []]


def _cached_snapshot_files(spec: str, repo_id: str, revision: str) -> tuple[str, list[str]]:
    storage = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")
    ref = storage / "refs" / revision
    sha = revision if _COMMIT_SHA.match(revision) else ref.read_text().strip() if ref.is_file() else None
    snapshot = storage / "snapshots" / (sha or "-")
    if sha is None or not snapshot.is_dir():
        raise HubTeacherError(
            f"teacher {spec!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) at revision "
            f"{revision!r} and HF_HUB_OFFLINE=1 forbids downloading it; load it once online, give the commit a run "
            "used ('hf-hub:ns/name@<sha>' from feed_config.json), or unset HF_HUB_OFFLINE"
        )
    return sha, sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file())


def _hub_download(spec: str, repo_id: str, filename: str, revision: str) -> str:
    try:
        return hf_hub_download(repo_id, filename, revision=revision, endpoint=constants.ENDPOINT)
    except Exception as error:
        raise _hub_error(spec, repo_id, revision, error) or error from None


def _hub_error(spec: str, repo_id: str, revision: str | None, error: Exception) -> HubTeacherError | None:
    """One line for a Hub failure, naming the teacher and the fix; None for an error that is none of these."""
    endpoint = constants.ENDPOINT
    if isinstance(error, (RepositoryNotFoundError, GatedRepoError)):
        return HubTeacherError(
            f"teacher {spec!r}: the Hub at {endpoint} has no model repo {repo_id!r} you can read; check the id, "
            "or log in (HF_TOKEN or `hf auth login`) if it is private or gated"
        )
    if isinstance(error, RevisionNotFoundError):
        return HubTeacherError(
            f"teacher {spec!r}: repo {repo_id!r} has no revision {revision!r}; use an existing branch, tag or "
            f"commit sha, e.g. 'hf-hub:{repo_id}@main'"
        )
    if isinstance(error, LocalEntryNotFoundError):
        return HubTeacherError(
            f"teacher {spec!r}: cannot download it from {endpoint} and it is not in the local cache ({error}); "
            "check the network and HF_ENDPOINT"
        )
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "?"
        return HubTeacherError(
            f"teacher {spec!r}: the Hub at {endpoint} answered HTTP {status} for {repo_id!r}; check the token "
            "(HF_TOKEN) if it is 401/403, or retry later"
        )
    if isinstance(error, (HTTPError, OSError)):
        return HubTeacherError(
            f"teacher {spec!r}: cannot reach the Hub at {endpoint} ({type(error).__name__}); check the network "
            f"and HF_ENDPOINT, or run with HF_HUB_OFFLINE=1 if 'hf-hub:{repo_id}@<sha>' is already cached"
        )
    return None
