"""CIFAR ResNets and Wide ResNets registered with timm (`timm.create_model("resnet56_cifar")`)."""

from .cifar_resnet import CifarResNet
from .cifar_wrn import CifarWideResNet

CIFAR_MODEL_NAMES = (
    "resnet8_cifar",
    "resnet14_cifar",
    "resnet20_cifar",
    "resnet32_cifar",
    "resnet44_cifar",
    "resnet56_cifar",
    "resnet110_cifar",
    "resnet8x4_cifar",
    "resnet32x4_cifar",
    "wrn_16_2_cifar",
    "wrn_40_1_cifar",
    "wrn_40_2_cifar",
    "wrn_28_10_cifar",
)

__all__ = ["CIFAR_MODEL_NAMES", "CifarResNet", "CifarWideResNet"]
