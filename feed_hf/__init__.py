"""feed-hf: FEED (feature-level ensemble knowledge distillation) as a transformers Trainer over timm models.

Importing the package registers the CIFAR architectures with timm (`resnet56_cifar`, `wrn_40_2_cifar`, ...) and
nothing else: a model card tells Hub users to `import feed_hf` just to load a CIFAR student, so transformers,
accelerate and datasets are imported only when a symbol that needs them is first used (PEP 562 lazy exports).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from . import models

try:
    __version__ = version("feed-hf")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

# public name -> the module that defines it
_LAZY_EXPORTS = {
    "FeedConfig": "training.config.feed_config",
    "FeedConnector": "method.connectors",
    "DataArguments": "data.loading",
    "load_image_splits": "data.loading",
    "export_student": "publishing.export",
    "FeatureTap": "method.features",
    "ensemble_kd_loss": "method.losses",
    "feed_distance": "method.losses",
    "feed_loss": "method.losses",
    "to_pixel_values": "data.pixel_values",
    "FeedStudent": "method.modeling",
    "FeedStudentOutput": "method.modeling",
    "build_feed_student": "method.modeling",
    "create_student": "training.students",
    "FrozenTeacher": "teachers.frozen",
    "load_teacher_model": "teachers.frozen",
    "FeedTrainer": "training.trainer",
    "train_model": "training.train_model",
    "SequentialArguments": "training.sequential",
    "run_sequential": "training.sequential",
}

__all__ = [  # the lazy exports above, plus what is imported eagerly
    "DataArguments",
    "FeatureTap",
    "FeedConfig",
    "FeedConnector",
    "FeedStudent",
    "FeedStudentOutput",
    "FeedTrainer",
    "FrozenTeacher",
    "SequentialArguments",
    "__version__",
    "build_feed_student",
    "create_student",
    "ensemble_kd_loss",
    "export_student",
    "feed_distance",
    "feed_loss",
    "load_image_splits",
    "load_teacher_model",
    "models",
    "run_sequential",
    "to_pixel_values",
    "train_model",
]

if TYPE_CHECKING:  # what static tools and IDEs see
    from .data.loading import DataArguments, load_image_splits
    from .data.pixel_values import to_pixel_values
    from .method.connectors import FeedConnector
    from .method.features import FeatureTap
    from .method.losses import ensemble_kd_loss, feed_distance, feed_loss
    from .method.modeling import FeedStudent, FeedStudentOutput, build_feed_student
    from .publishing.export import export_student
    from .teachers.frozen import FrozenTeacher, load_teacher_model
    from .training.config.feed_config import FeedConfig
    from .training.sequential import SequentialArguments, run_sequential
    from .training.students import create_student
    from .training.train_model import train_model
    from .training.trainer import FeedTrainer


def __getattr__(name: str) -> Any:
    if name not in _LAZY_EXPORTS:
        raise AttributeError(f"module 'feed_hf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
