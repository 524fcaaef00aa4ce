"""Command-line habits from transformers' example scripts (issue 19, item 9): --do_train/--do_eval/--do_predict,
--config FILE, --model_name_or_path, and `feed-hf env` for a bug report."""

from __future__ import annotations

import json
import re

import pytest
from recipe_helpers import tiny_argv

from feed_hf.data.loading import DataArguments
from feed_hf.runs.arguments import parse_arguments
from feed_hf.training.config.feed_config import FeedConfig
from feed_hf_cli import main, run_command

TYPES = (DataArguments, FeedConfig)


def test_do_eval_false_trains_and_skips_the_evaluation(tmp_path):
    results = run_command("baselines", tiny_argv(tmp_path / "run", "--do_eval", "false"))
    assert not any(key.startswith("eval_") for entry in results["log_history"] for key in entry)
    assert (tmp_path / "run" / "model.safetensors").is_file()  # trained and exported all the same
    evaluated = run_command("baselines", tiny_argv(tmp_path / "evaluated"))
    assert any("eval_top1" in entry for entry in evaluated["log_history"])  # the default still evaluates


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--do_train", "false"], "do_train=False .* it would do nothing; .*feed-hf evaluate"),
        (["--do_predict", "true"], "do_predict=True .* no prediction step; .*feed-hf evaluate"),
    ],
)
def test_do_train_false_and_do_predict_are_refused_in_one_line(tmp_path, capsys, flag, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["baselines", *tiny_argv(tmp_path / "run"), *flag])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(error.strip().splitlines()) == 1
    assert re.search(message, error), error
    assert not (tmp_path / "run").exists()


def test_config_option_is_the_positional_config_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("feed_beta: 250\nstudent: resnet8_cifar\n")
    positional = parse_arguments(TYPES, [str(config), "--output_dir", str(tmp_path)])
    for argv in (
        ["--config", str(config), "--output_dir", str(tmp_path)],
        ["--output_dir", str(tmp_path), f"--config={config}"],
    ):
        _, args = parse_arguments(TYPES, argv)
        assert (args.feed_beta, args.student) == (positional[1].feed_beta, positional[1].student)
    assert (positional[1].feed_beta, positional[1].student) == ([250.0], "resnet8_cifar")
    with pytest.raises(ValueError, match="give one, either first or with --config"):
        parse_arguments(TYPES, [str(config), "--config", str(config)])
    with pytest.raises(ValueError, match="--config needs a file"):
        parse_arguments(TYPES, ["--config"])


def test_model_name_or_path_is_the_student(tmp_path):
    (_, args) = parse_arguments(TYPES, ["--model_name_or_path", "resnet14_cifar", "--output_dir", str(tmp_path)])
    assert args.student == "resnet14_cifar"
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model_name_or_path": "resnet8_cifar", "output_dir": str(tmp_path)}))
    assert parse_arguments(TYPES, [str(config)])[1].student == "resnet8_cifar"
    config.write_text(json.dumps({"model_name_or_path": "resnet8_cifar", "student": "resnet8_cifar"}))
    with pytest.raises(ValueError, match="model_name_or_path and student are the same option"):
        parse_arguments(TYPES, [str(config)])


def test_env_prints_what_a_bug_report_needs_and_never_the_token(capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_print_me")
    main(["env"])
    printed = capsys.readouterr().out
    for fact in ("feed-hf:", "torch:", "timm:", "transformers:", "accelerate:", "datasets:", "Python:", "Platform:"):
        assert f"- {fact}" in printed, fact
    for fact in ("CPU:", "torch CPU kernels:", "torch accelerator:", "GPUs:", "accelerate config:", "HF_ENDPOINT:"):
        assert f"- {fact}" in printed, fact
    assert "- Hugging Face token: set" in printed and "hf_do_not_print_me" not in printed
