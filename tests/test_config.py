import pytest
import yaml
from transformers import HfArgumentParser

from feed_hf import FeedConfig
from feed_hf.training.config.readouts import betas, connector_options


def _config(tmp_path, **fields):
    return FeedConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, **fields)


def test_defaults_are_the_paper_loss(tmp_path):
    config = _config(tmp_path, teachers=["a", "b"])
    assert betas(config, 2) == [500.0, 500.0]
    assert config.feed_p == 1 and config.feed_reduction == "mean" and config.kd_weight == 0
    assert config.remove_unused_columns is False
    assert connector_options(config) == {
        "num_layers": 3,
        "mid_channels": None,
        "norm": "none",
        "activation": "leaky_relu",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"feed_beta": [-1.0]}, "feed_beta must be finite and >= 0, got -1.0"),
        ({"feed_beta": [float("nan")]}, "feed_beta must be finite"),
        ({"teachers": ["a", "b", "c"], "feed_beta": [1.0, 2.0]}, "feed_beta has 2 values for 3 teachers"),
        ({"teachers": ["a", "b"], "feed_beta": [0.0, 2.0]}, "mixes 0 and non-zero"),
        ({"feed_p": 3}, "feed_p must be 1 .* or 2 .*, got 3"),
        ({"feed_reduction": "max"}, "feed_reduction must be 'mean' or 'sum', got 'max'"),
        ({"teachers": ["a", "b"], "teacher_feature_indices": [1, 2, 3]}, "teacher_feature_indices has 3 values"),
        ({"teachers": ["a"], "teacher_feature_modules": ["x", "y"]}, "teacher_feature_modules has 2 entries"),
        ({"connector_num_layers": 0}, "connector_num_layers must be >= 1, got 0"),
        ({"connector_norm": "fancynorm"}, "connector_norm='fancynorm' is not a timm layer name"),
        ({"connector_activation": "wiggle"}, "connector_activation='wiggle' is not a timm layer name"),
        ({"kd_weight": -0.5}, "kd_weight must be finite and >= 0"),
        ({"kd_temperature": 0.0}, "kd_temperature must be > 0"),
        ({"num_labels": -1}, "num_labels must be >= 1 .*or 0 for a backbone.*got -1"),
    ],
)
def test_bad_values_name_field_and_allowed_values(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, **fields)


def test_parses_from_command_line_and_yaml(tmp_path):
    parser = HfArgumentParser(FeedConfig)
    (config,) = parser.parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--teachers",
            "t0",
            "t1",
            "--feed_beta",
            "100",
            "200",
            "--feed_p",
            "2",
            "--report_to",
            "none",
        ]
    )
    assert config.teachers == ["t0", "t1"] and betas(config, 2) == [100.0, 200.0] and config.feed_p == 2
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {"output_dir": str(tmp_path), "student": "resnet20_cifar", "feed_reduction": "sum", "report_to": "none"}
        )
    )
    (from_yaml,) = parser.parse_yaml_file(str(path))
    assert from_yaml.student == "resnet20_cifar" and from_yaml.feed_reduction == "sum"


def test_python_api_accepts_one_value_where_a_list_is_allowed(tmp_path):
    config = _config(tmp_path, feed_beta=500, teachers="runs/t0", teacher_feature_indices=-2, lr_decay_epochs=())
    assert config.feed_beta == [500.0] and isinstance(config.feed_beta[0], float)
    assert config.teachers == ["runs/t0"] and config.teacher_feature_indices == [-2] and config.lr_decay_epochs == []
    assert betas(_config(tmp_path, feed_beta=(1, 2), teachers=("a", "b")), 2) == [1.0, 2.0]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"feed_p": 2.0}, r"^feed_p must be a whole number, got 2\.0$"),
        ({"feed_p": True}, r"^feed_p must be a whole number, got True$"),
        ({"connector_num_layers": [3]}, r"^connector_num_layers must be a whole number, got \[3\]$"),
        ({"kd_weight": "heavy"}, r"^kd_weight must be a number, got 'heavy'$"),
        ({"feed_beta": [1.0, "x"]}, r"^feed_beta must be a number or a list of numbers, got \[1\.0, 'x'\]$"),
        ({"teachers": [1]}, r"^teachers must be a string or a list of strings, got \[1\]$"),
        ({"student": 20}, r"^student must be a string or null, got 20"),
        ({"teacher_dtype": "fp8"}, r"^teacher_dtype must be 'float32', 'bfloat16' or 'float16', got 'fp8'$"),
        ({"channels_last": "sometimes"}, r"^channels_last must be true or false, got 'sometimes'$"),
        ({"feed_p": None}, r"^feed_p must be a whole number, got None$"),
    ],
)
def test_python_api_rejects_wrong_types_naming_field_and_allowed_form(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, **fields)
