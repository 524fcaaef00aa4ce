"""feed-hf: FEED (feature-level ensemble knowledge distillation) as a transformers Trainer over timm models.

Importing the package registers the CIFAR architectures with timm (`resnet56_cifar`, `wrn_40_2_cifar`, ...).
"""

from importlib.metadata import PackageNotFoundError, version

from . import models
from .config import FeedConfig
from .connectors import FeedConnector
from .export import export_student
from .features import FeatureTap
from .losses import ensemble_kd_loss, feed_distance, feed_loss
from .modeling import FeedStudent, FeedStudentOutput, build_feed_student
from .teachers import FrozenTeacher, load_teacher_model
from .trainer import FeedTrainer

try:
    __version__ = version("feed-hf")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = [
    "FeatureTap",
    "FeedConfig",
    "FeedConnector",
    "FeedStudent",
    "FeedStudentOutput",
    "FeedTrainer",
    "FrozenTeacher",
    "__version__",
    "build_feed_student",
    "ensemble_kd_loss",
    "export_student",
    "feed_distance",
    "feed_loss",
    "load_teacher_model",
    "models",
]
