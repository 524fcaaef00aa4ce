import pytest
import timm
import torch

from feed_hf.models import CIFAR_MODEL_NAMES

# Parameter counts with 100 classes as the CRD / RepDistiller tables report them (millions, 2 decimals).
PUBLISHED_MILLIONS = {
    "resnet8_cifar": 0.08,
    "resnet14_cifar": 0.18,
    "resnet20_cifar": 0.28,
    "resnet32_cifar": 0.47,
    "resnet44_cifar": 0.67,
    "resnet56_cifar": 0.86,
    "resnet110_cifar": 1.74,
    "resnet8x4_cifar": 1.23,
    "resnet32x4_cifar": 7.43,
    "wrn_16_2_cifar": 0.70,
    "wrn_40_1_cifar": 0.57,
    "wrn_40_2_cifar": 2.26,
}
FINAL_CHANNELS = {"resnet8x4_cifar": 256, "resnet32x4_cifar": 256, "wrn_16_2_cifar": 128, "wrn_40_2_cifar": 128}


@pytest.mark.parametrize("name", sorted(PUBLISHED_MILLIONS))
def test_parameter_count_matches_repdistiller(name):
    model = timm.create_model(name, num_classes=100)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert round(millions, 2) == pytest.approx(PUBLISHED_MILLIONS[name], abs=0.006)


@pytest.mark.parametrize("name", [n for n in CIFAR_MODEL_NAMES if n != "wrn_28_10_cifar"])
def test_outputs_and_feature_maps(name):
    model = timm.create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    final_map, intermediates = model.forward_intermediates(x)
    assert model(x).shape == (2, 10)
    assert [tuple(t.shape[2:]) for t in intermediates] == [(32, 32), (32, 32), (16, 16), (8, 8)]
    assert [t.shape[1] for t in intermediates] == [info["num_chs"] for info in model.feature_info]
    assert intermediates[-1].shape[1] == FINAL_CHANNELS.get(name, 64) == model.num_features
    torch.testing.assert_close(final_map, model.forward_features(x))
    torch.testing.assert_close(intermediates[-1], final_map)
    torch.testing.assert_close(model.forward_head(final_map), model(x))


def test_wrn_28_10_builds_with_published_size():
    model = timm.create_model("wrn_28_10_cifar", num_classes=100)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(36.5, abs=0.1)


def test_default_cfg_has_cifar_preprocessing():
    model = timm.create_model("resnet56_cifar", num_classes=100)
    config = timm.data.resolve_model_data_config(model)
    assert config["input_size"] == (3, 32, 32)
    assert config["mean"] == pytest.approx((0.5071, 0.4865, 0.4409))
    assert config["std"] == pytest.approx((0.2673, 0.2564, 0.2762))


def test_intermediates_stop_early_and_select():
    model = timm.create_model("resnet20_cifar").eval()
    x = torch.randn(1, 3, 32, 32)
    (stage2,) = model.forward_intermediates(x, indices=[2], stop_early=True, intermediates_only=True)
    assert stage2.shape == (1, 32, 16, 16)
    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [t.shape[1] for t in last_two] == [32, 64]


def test_features_only_uses_forward_intermediates():
    model = timm.create_model("wrn_16_2_cifar", features_only=True, out_indices=(1, 3))
    maps = model(torch.randn(1, 3, 32, 32))
    assert [m.shape[1] for m in maps] == [32, 128]


def test_reset_classifier_changes_head_only():
    model = timm.create_model("resnet8_cifar", num_classes=100)
    model.reset_classifier(3)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert model.num_classes == 3


def test_bad_depth_is_explained():
    from feed_hf.models import CifarResNet

    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(depth=21)
