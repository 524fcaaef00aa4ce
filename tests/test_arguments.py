"""Every value of a YAML/JSON config or command line is checked against its field's declared type on entry."""

import subprocess
import sys
from pathlib import Path

import pytest

from feed_hf.data.loading import DataArguments
from feed_hf.runs.arguments import parse_arguments
from feed_hf.runs.jobs import BaselineArguments, TeacherArguments
from feed_hf.training.config.feed_config import FeedConfig
from feed_hf.training.sequential import SequentialArguments

ROOT = Path(__file__).resolve().parent.parent
TYPES = (DataArguments, FeedConfig)


def _parse(tmp_path, text, *argv, types=TYPES, name="c.yaml"):
    config = tmp_path / name
    config.write_text(text)
    return parse_arguments(types, [str(config), "--output_dir", str(tmp_path), "--report_to", "none", *argv])


@pytest.mark.parametrize(
    ("text", "types", "message"),
    [
        ("max_steps: abc\n", TYPES, r"c\.yaml: max_steps must be a whole number, got 'abc'$"),
        ("learning_rate: fast\n", TYPES, r"c\.yaml: learning_rate must be a number, got 'fast'$"),
        ("max_steps: [1, 2]\n", TYPES, r"c\.yaml: max_steps must be a whole number, got \[1, 2\]$"),
        ("kd_weight: [1.0]\n", TYPES, r"c\.yaml: kd_weight must be a number, got \[1\.0\]$"),
        ("max_steps: 2.7\n", TYPES, r"c\.yaml: max_steps must be a whole number, got 2\.7$"),
        ("feed_p: true\n", TYPES, r"c\.yaml: feed_p must be a whole number, got True$"),
        ("feed_beta: [1, two]\n", TYPES, r"c\.yaml: feed_beta must be a number or a list of numbers, got \[1, 'two'\]"),
        ("feed_reduction: max\n", TYPES, r"c\.yaml: feed_reduction must be 'mean' or 'sum', got 'max'$"),
        ("teacher_dtype: fp8\n", TYPES, r"teacher_dtype must be 'float32', 'bfloat16' or 'float16', got 'fp8'"),
        ("save_strategy: sometimes\n", TYPES, r"save_strategy must be 'no', 'steps', 'epoch' or 'best'"),
        ("save_strategy: [epoch]\n", TYPES, r"save_strategy must be 'no', .* or 'best', got \['epoch'\]$"),
        ("save_strategy: no\n", TYPES, r"save_strategy must be 'no', .* got False \(YAML reads an unquoted yes/no"),
        ("use_cpu: maybe\n", TYPES, r"c\.yaml: use_cpu must be true or false, got 'maybe'$"),
        ("student: 20\n", TYPES, r"student must be a string or null, got 20 \(YAML reads it as a number"),
        ("lr_scheduler_kwargs: 3\n", TYPES, r"lr_scheduler_kwargs must be a mapping \(key: value\), a string or null"),
        ("max_train_samples: 2.5\n", TYPES, r"c\.yaml: max_train_samples must be a whole number or null, got 2\.5$"),
        ("baseline: distill\n", (*TYPES, BaselineArguments), r"baseline must be 'ce', 'kd' or 'single_feed'"),
        ("teacher_seeds: [1, 2.5]\n", (*TYPES, TeacherArguments), r"teacher_seeds must be a whole number or a list"),
        ("num_generations: two\n", (*TYPES, SequentialArguments), r"num_generations must be a whole number, got 'two'"),
        ("student: resnet8\nfeed_beta: [1, 2\n", TYPES, r"c\.yaml:3:1: not valid YAML/JSON \(expected ',' or ']'.*"),
        ("student: a: b\n", TYPES, r"c\.yaml:1:11: not valid YAML/JSON \(mapping values are not allowed here\)"),
        ("- student: resnet8\n", TYPES, r"c\.yaml must be a mapping of option: value.*but it holds a list$"),
        ("hello\n", TYPES, r"c\.yaml must be a mapping of option: value.*but it holds the single value 'hello'$"),
        ('{"max_steps": "3x"}', TYPES, r"c\.yaml: max_steps must be a whole number, got '3x'$"),
    ],
)
def test_bad_config_values_are_one_line_naming_file_field_and_allowed_form(tmp_path, text, types, message):
    with pytest.raises(ValueError, match=message) as error:
        _parse(tmp_path, text, types=types)
    assert "\n" not in str(error.value)


def test_json_syntax_error_names_line_and_column(tmp_path):
    with pytest.raises(ValueError, match=r"c\.json:2:\d+: not valid YAML/JSON"):
        _parse(tmp_path, '{"student": "resnet8_cifar",\n "max_steps": 3,,}', name="c.json")


def test_values_convert_as_the_command_line_would(tmp_path):
    text = "feed_beta: 500\nteachers: runs/t0\nteacher_seeds: 3\nmax_steps: '7'\nlearning_rate: 1e-3\nuse_cpu: 'yes'\n"
    data_args, args, teacher_args = _parse(tmp_path, text, types=(*TYPES, TeacherArguments))
    assert args.feed_beta == [500.0] and args.teachers == ["runs/t0"] and teacher_args.teacher_seeds == [3]
    assert args.max_steps == 7 and args.learning_rate == 0.001 and args.use_cpu is True  # YAML reads 1e-3 as text
    assert isinstance(args.feed_beta[0], float) and data_args.dataset


def test_scalar_for_a_list_that_is_null_or_empty_and_dict_fields(tmp_path):
    text = "teachers: []\nmax_train_samples: null\nlr_scheduler_kwargs: {min_lr: 0.0}\nreport_to: [none]\n"
    data_args, args = _parse(tmp_path, text)
    assert args.teachers == [] and data_args.max_train_samples is None
    assert args.lr_scheduler_kwargs == {"min_lr": 0.0}


def test_command_line_wins_over_the_file_and_list_options_given_once_work(tmp_path):
    _, args = _parse(tmp_path, "feed_beta: [1, 2]\nteachers: [a, b]\n", "--feed_beta", "7", "--teachers", "runs/t0")
    assert args.feed_beta == [7.0] and args.teachers == ["runs/t0"]


def test_bad_command_line_value_is_one_line_not_the_usage(tmp_path):
    with pytest.raises(
        ValueError, match=r"^argument --max_steps\S*: invalid int value: '2\.7' \(`feed-hf parallel --help` lists"
    ):
        parse_arguments(TYPES, ["--output_dir", str(tmp_path), "--max_steps", "2.7"], prog="feed-hf parallel")
    with pytest.raises(ValueError, match=r"argument --feed_reduction\S*: invalid choice: 'max'"):
        parse_arguments(TYPES, ["--output_dir", str(tmp_path), "--feed_reduction", "max"])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config file '.*nope\.yaml' does not exist"):
        parse_arguments(TYPES, [str(tmp_path / "nope.yaml")])


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["-m", "feed_hf.cli", "parallel", "CONFIG"], "bad.yaml: max_steps must be a whole number, got 2.7"),
        ([str(ROOT / "recipes" / "feed_parallel.py"), "CONFIG"], "bad.yaml: max_steps must be a whole number, got 2.7"),
        (["-m", "feed_hf.cli", "parallel", "--max_steps", "2.7"], "--max-steps: invalid int value: '2.7'"),
    ],
    ids=["cli-config", "recipe-config", "cli-argument"],
)
def test_config_errors_are_one_line_from_the_cli_and_the_recipes(tmp_path, command, expected):
    config = tmp_path / "bad.yaml"
    config.write_text("max_steps: 2.7\n")
    argv = [str(config) if word == "CONFIG" else word for word in command]
    done = subprocess.run(
        [sys.executable, *argv, "--output_dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and "usage:" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("feed-hf: error: ")]
    assert expected in line
