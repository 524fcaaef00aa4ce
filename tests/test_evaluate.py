"""`feed-hf evaluate`: the top-1 of an exported folder or a Hub repo on a split equals the one its training reported."""

import json
import re
import shutil

import datasets
import pytest
from conftest import HUB_TOKEN
from recipe_helpers import tiny_argv

from feed_hf.data.loading import digits_dataset
from feed_hf.publishing.hub import push_export
from feed_hf_cli import main, run_command

DATA = ["--dataset", "digits", "--max_train_samples", "64", "--max_eval_samples", "32"]  # as tiny_argv trains


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny CE model on digits (tiny_argv) and its results.json."""
    output_dir = tmp_path_factory.mktemp("evaluate") / "ce"
    run_command("baselines", tiny_argv(output_dir, "--baseline", "ce"))
    return output_dir, json.loads((output_dir / "results.json").read_text())


def test_evaluate_reproduces_the_reported_top1_with_a_table_and_json(trained, tmp_path, capsys):
    output_dir, results = trained
    report_path = tmp_path / "report.json"
    main(["evaluate", "--model", str(output_dir), "--split", "eval", *DATA, "--output_json", str(report_path)])
    report = json.loads(report_path.read_text())
    assert report["top1"] == results["metrics"]["eval_top1"]
    assert report["top5"] == results["metrics"]["eval_top5"] and report["num_examples"] == 32
    printed = capsys.readouterr().out
    assert f"{report['top1']:.2f} %" in printed and "top5" in printed and str(report_path) in printed


def test_evaluate_a_hub_repo_at_a_revision(trained, loopback_hub, capsys):
    output_dir, results = trained
    commit = push_export(output_dir, "tester/evaluated-student", token=HUB_TOKEN)
    for model in ("hf-hub:tester/evaluated-student", f"hf-hub:tester/evaluated-student@{commit.oid}"):
        report = run_command("evaluate", ["--model", model, "--split", "eval", *DATA])
        assert report["top1"] == results["metrics"]["eval_top1"] and report["model"] == model


def test_evaluate_another_split_by_name(trained, tmp_path):
    output_dir, _ = trained
    report = run_command("evaluate", ["--model", f"local-dir:{output_dir}", "--split", "train", *DATA])
    assert report["num_examples"] == 64 and 0 <= report["top1"] <= 100


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "resnet8_cifar", "--split", "eval"], "is neither an existing folder, local-dir:PATH nor hf-hub:"),
        (["--model", "hf-hub:tester/no-such-repo", "--split", "eval"], "has no model repo 'tester/no-such-repo'"),
        (["--split", "test", "--model", "MODEL"], "has no split 'test'"),
        (["--split", "eval"], "the following arguments are required: --model"),
    ],
)
def test_evaluate_errors_are_one_line(trained, loopback_hub, capsys, argv, message):
    output_dir, _ = trained
    argv = [str(output_dir) if item == "MODEL" else item for item in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *argv, "--dataset", "digits"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(error.strip().splitlines()) == 1
    assert error.startswith("feed-hf: error: ") and re.search(message, error), error


def test_evaluate_on_data_with_other_classes_is_refused(trained, tmp_path, capsys):
    output_dir, _ = trained
    dataset = tmp_path / "five digits"
    digits = digits_dataset().cast_column("label", datasets.Value("int64"))  # integer labels: classes "0".."4"
    digits.select([i for i, label in enumerate(digits["label"]) if label < 5]).save_to_disk(str(dataset))
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", str(output_dir), "--split", "eval", "--dataset", str(dataset)])
    error = capsys.readouterr().err
    assert "was trained on classes ['0', '1', '2', '3', '4', …] (10) but this split's classes are ['0'" in error
    assert "(5); evaluate on data with the same classes" in error


def test_evaluate_inputs_that_used_to_raise_tracebacks_are_one_line(trained, tmp_path, capsys):
    output_dir, _ = trained
    truncated = tmp_path / "truncated"
    shutil.copytree(output_dir, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    cases = [
        (["--model", str(truncated)], f"checkpoint '{weights}' is not a readable safetensors file"),
        (["--model", str(output_dir), "--label_column", "none"], "split 'eval' has no labels (a label-free split)"),
        (["--model", str(output_dir), "--output_json", str(tmp_path)], f"output_json '{tmp_path}' is a folder"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", *argv, "--split", "eval", *DATA])
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert exit_info.value.code == 2 and error.startswith(f"feed-hf: error: {message}"), error
