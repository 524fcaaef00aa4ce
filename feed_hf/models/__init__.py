"""CIFAR ResNets and Wide ResNets registered with timm (`timm.create_model("resnet56_cifar")`)."""

from . import cifar_resnet, cifar_wrn
from .cifar_resnet import CifarResNet
from .cifar_wrn import CifarWideResNet

CIFAR_MODEL_NAMES = tuple(cifar_resnet.default_cfgs) + tuple(cifar_wrn.default_cfgs)

__all__ = ["CIFAR_MODEL_NAMES", "CifarResNet", "CifarWideResNet"]
