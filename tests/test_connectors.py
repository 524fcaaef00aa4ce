import pytest
import torch
from torch import nn

from feed_hf.method.connectors import FeedConnector
from feed_hf.method.features import common_spatial_size, match_spatial_size


def test_default_is_factor_transfer_translator():
    connector = FeedConnector(16, 64)
    convs = [m for m in connector if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(16, 16), (16, 64), (64, 64)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is not None for c in convs)
    activations = [m for m in connector if isinstance(m, nn.LeakyReLU)]
    assert len(activations) == 3 and all(a.negative_slope == 0.1 for a in activations)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in connector)
    assert connector(torch.randn(2, 16, 8, 8)).shape == (2, 64, 8, 8)


def test_options_for_width_norm_activation_and_depth():
    connector = FeedConnector(8, 32, mid_channels=24, num_layers=4, norm="batchnorm2d", activation="relu")
    convs = [m for m in connector if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(8, 24), (24, 24), (24, 32), (32, 32)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in connector) == 4
    assert sum(isinstance(m, nn.ReLU) for m in connector) == 4
    single = FeedConnector(8, 32, num_layers=1)
    assert [(c.in_channels, c.out_channels) for c in single if isinstance(c, nn.Conv2d)] == [(8, 32)]


def test_spatial_rule_pools_the_larger_map_down():
    assert common_spatial_size((16, 16), (8, 8)) == (8, 8)
    assert common_spatial_size((4, 4), (8, 8)) == (4, 4)
    assert common_spatial_size((8, 8), (8, 8)) == (8, 8)
    feature_map = torch.arange(16.0).view(1, 1, 4, 4)
    pooled = match_spatial_size(feature_map, (2, 2))
    torch.testing.assert_close(pooled, torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert match_spatial_size(feature_map, (4, 4)) is feature_map


def test_never_upsamples():
    with pytest.raises(ValueError, match="cannot pool"):
        match_spatial_size(torch.randn(1, 1, 2, 2), (4, 4))


def test_connector_output_is_pooled_to_its_output_size():
    connector = FeedConnector(16, 32, output_size=(4, 4))
    assert connector(torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
