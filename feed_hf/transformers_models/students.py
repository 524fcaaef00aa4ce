"""A transformers model as the FEED student: created (fresh or pretrained) behind the timm interface, exported as a
`save_pretrained` folder with its image processor.

With classes, the student is an `AutoModelForImageClassification` model whose classifier is always fresh for the
run's classes (the source's head answered another question); without (`num_labels=0`, label-free FEED) it is the
bare network, a backbone. The export loads with `AutoModelForImageClassification.from_pretrained` (or `AutoModel`
for a backbone) and `pipeline("image-classification")`, and preprocesses as training evaluated.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, resolve_model_data_config

from ..teachers.sources import TeacherSourceError
from .adapter import TransformersVisionModel
from .preprocessing import image_processor_for
from .sources import load_transformers_model, model_class_for, prepare_transformers_source
from .teachers import source_pretrained_cfg

__all__ = ["load_transformers_student", "save_transformers_student", "transformers_student_from_config"]

logger = logging.getLogger(__name__)


def load_transformers_student(spec: str, num_labels: int, allow_pickle: bool = False) -> TransformersVisionModel:
    """A pretrained transformers model (`hf-hub:ns/name[@rev]`, `local-dir:PATH`, `PATH`) as the student, with a
    fresh classifier for `num_labels` classes (0: the bare network). Its mean/std/size come from its processor."""
    try:
        prepared = prepare_transformers_source(spec, allow_pickle, classifier=num_labels > 0, role="student")
        # A backbone checkpoint has no classifier weights: they are replaced below anyway.
        model = load_transformers_model(
            prepared.source, prepared.model_class, allowed_missing=("classifier",), role="student"
        )
    except TeacherSourceError as error:
        raise TeacherSourceError(str(error).replace("teacher ", "student ", 1)) from None
    student = TransformersVisionModel(model, source_pretrained_cfg(prepared.source, prepared.data_config))
    student.reset_classifier(num_labels)
    return student.train()


def transformers_student_from_config(
    config: Any, num_labels: int, data_config: dict[str, Any] | None = None
) -> TransformersVisionModel:
    """A freshly initialised transformers student from a config object (e.g. `ConvNextConfig(...)`).

    `data_config`: its preprocessing as timm data-config keys (at least `mean`, `std`, `input_size`); None: the
    config's `image_size` (224 without one) and ImageNet's mean/std, stated in the log.
    """
    config = copy.deepcopy(config)
    model_class, model_config = model_class_for(config, classifier=num_labels > 0)
    if num_labels > 0:
        model_config.num_labels = num_labels
    vision = _vision_config(model_config)
    if data_config is None:
        data_config = _default_data_config(vision)
        logger.warning(
            "transformers student %s: no preprocessing given: %dx%d, ImageNet mean/std (pass data_config to choose)",
            type(vision).__name__,
            *data_config["input_size"][1:],
        )
    model = model_class(model_config)
    return TransformersVisionModel(model, dict(data_config)).train()


def _vision_config(config: Any) -> Any:
    return getattr(config, "vision_config", None) or config


def _default_data_config(vision_config: Any) -> dict[str, Any]:
    size = getattr(vision_config, "image_size", None) or 224
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    channels = int(getattr(vision_config, "num_channels", 3) or 3)
    return {
        "input_size": (channels, *size),
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "interpolation": "bicubic",
        "crop_pct": 1.0,
        "crop_mode": "center",
    }


def save_transformers_student(
    student: TransformersVisionModel, folder: str | Path, label_names: list[str] | None = None
) -> Path:
    """Write the bare transformers model (`save_pretrained`, safetensors) and the image processor that
    preprocesses as its evaluation did (`image_processor_for` of its data config) into `folder`.

    `label_names` become the config's `id2label`/`label2id`, so `pipeline()` answers with names.
    """
    model = student.model
    if label_names and len(label_names) != student.num_classes:
        raise ValueError(
            f"{len(label_names)} label names for a student with {student.num_classes} classes; give one name per "
            "class (or none)"
        )
    processor = image_processor_for(resolve_model_data_config(student))  # before writing: a refusal leaves nothing
    if label_names:
        model.config.id2label = dict(enumerate(label_names))
        model.config.label2id = {name: index for index, name in enumerate(label_names)}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
