import pytest
import timm
import torch
from torch import nn

from feed_hf.method.features import FeatureTap, probe_feature_shape


def test_default_tap_is_the_final_pre_pool_map_and_one_forward_gives_logits():
    model = timm.create_model("resnet8_cifar", num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    logits, feature_map = FeatureTap(model).logits_and_map(model, x)
    torch.testing.assert_close(feature_map, model.forward_features(x))
    torch.testing.assert_close(logits, model(x))


def test_index_selects_another_stage():
    model = timm.create_model("resnet8_cifar").eval()
    tap = FeatureTap(model, index=2)
    assert tap.map_only(model, torch.randn(1, 3, 32, 32)).shape == (1, 32, 16, 16)
    assert probe_feature_shape(model, FeatureTap(model, index=-3), (3, 32, 32)) == (16, 32, 32)


def test_out_of_range_index_lists_the_valid_range():
    model = timm.create_model("resnet8_cifar")
    with pytest.raises(ValueError, match=r"valid indices are -4\.\.3"):
        FeatureTap(model, index=4, role="student")


class NoIntermediates(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))

    def forward(self, x):
        return self.head(self.body(x))


def test_hook_fallback_by_module_name():
    model = NoIntermediates().eval()
    tap = FeatureTap(model, module_name="body")
    x = torch.randn(2, 3, 8, 8)
    logits, feature_map = tap.logits_and_map(model, x)
    torch.testing.assert_close(feature_map, model.body(x))
    torch.testing.assert_close(logits, model(x))
    assert probe_feature_shape(model, tap, (3, 8, 8)) == (6, 8, 8)


def test_model_without_intermediates_needs_a_module_name():
    with pytest.raises(ValueError, match="feature_module"):
        FeatureTap(NoIntermediates())
    with pytest.raises(ValueError, match="no module named 'nope'"):
        FeatureTap(NoIntermediates(), module_name="nope")


def test_probe_restores_training_mode():
    model = timm.create_model("resnet8_cifar").train()
    probe_feature_shape(model, FeatureTap(model), (3, 32, 32))
    assert model.training
