"""What a card says of the exported network, read from its config.json in either format feed-hf exports.

timm's config names an `architecture`, `num_classes` and a `pretrained_cfg`; transformers' a `model_type`, its
class in `architectures` and its classes in `id2label` (a backbone has none that were trained). The input size is
the one the student was trained and evaluated at, as feed_config.json records it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["exported_model_facts", "transformers_export_problem"]


def exported_model_facts(config: dict[str, Any], feed: dict[str, Any]) -> dict[str, Any]:
    """`{"library", "architecture", "num_classes", "input_size"}` of an export's `config` (its config.json)."""
    if feed.get("student_library") == "transformers":
        classes = config.get("architectures") or [config.get("model_type", "unknown")]
        trained = feed.get("num_labels") or 0
        return {
            "library": "transformers",
            "architecture": classes[0],
            "num_classes": trained,
            "input_size": list((feed.get("student_input_size") or {}).get("size") or []),
        }
    return {
        "library": "timm",
        "architecture": config["architecture"],
        "num_classes": config.get("num_classes"),
        "input_size": list(config.get("pretrained_cfg", {}).get("input_size", [])[1:]),
    }


def transformers_export_problem(export_dir: str | Path) -> str | None:
    """Why a transformers-format export cannot be published (None: it can): its config must build the network on
    the meta device, its `preprocessor_config.json` must agree with it, and `model.safetensors` must fill it (loaded
    as transformers loads it: the student is small)."""
    from ..teachers.sources import TeacherSourceError
    from ..transformers_models.sources import load_transformers_model, prepare_transformers_source

    try:  # transformers renames checkpoint keys as it loads: only its own load says whether they fill the network
        prepared = prepare_transformers_source(str(export_dir), role="export")
        load_transformers_model(prepared.source, prepared.model_class, role="export")
    except (TeacherSourceError, ValueError, OSError) as error:
        return str(error).splitlines()[0]
    return None
