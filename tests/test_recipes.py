import json
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
import yaml
from recipe_helpers import load_recipe, tiny_argv

from feed_hf.data.loading import DataArguments
from feed_hf.runs.arguments import parse_arguments
from feed_hf.training.config.feed_config import FeedConfig


@pytest.fixture(scope="module")
def trained_teachers(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("teachers")
    results = load_recipe("train_teachers").main(tiny_argv(output_dir, "--teacher_seeds", "1", "2"))
    return [str(output_dir / f"teacher_{i}") for i in range(len(results))], results


def test_train_teachers_exports_one_model_per_seed(trained_teachers):
    teacher_dirs, results = trained_teachers
    assert [r["seed"] for r in results] == [1, 2]
    weights = [safetensors.torch.load_file(f"{d}/model.safetensors") for d in teacher_dirs]
    assert not torch.equal(weights[0]["conv1.weight"], weights[1]["conv1.weight"])  # different seeds
    for teacher_dir in teacher_dirs:
        recorded = json.loads(open(f"{teacher_dir}/results.json").read())
        assert recorded["task"] == "teacher" and recorded["feed"]["teachers"] == []
        assert 0 <= recorded["metrics"]["eval_top1"] <= 100
        assert recorded["versions"]["timm"] and recorded["config"]["seed"] == recorded["seed"]
        assert "## Results" in open(f"{teacher_dir}/README.md").read()


def test_feed_parallel_recipe_trains_from_exported_teachers(trained_teachers, tmp_path):
    teacher_dirs, teacher_results = trained_teachers
    results = load_recipe("feed_parallel").main(tiny_argv(tmp_path / "pfeed", "--teachers", *teacher_dirs))
    assert results["task"] == "pfeed" and len(results["feed"]["resolved_teachers"]) == 2
    assert results["feed"]["resolved_teachers"][0]["top1"] == teacher_results[0]["metrics"]["eval_top1"]
    assert any("feed/loss_t1" in entry for entry in results["log_history"])
    model = timm.create_model(f"local-dir:{tmp_path / 'pfeed'}", pretrained=True)
    assert tuple(model.pretrained_cfg["input_size"]) == (3, 16, 16)  # the trained resolution is recorded
    card = (tmp_path / "pfeed" / "README.md").read_text()
    assert "teacher_0" in card and f"{results['metrics']['eval_top1']:.2f}" in card
    for index, teacher in enumerate(teacher_results):  # each teacher's measured top-1 in its row of the card
        assert f"| {index} | teacher_{index} | `resnet8_cifar` | — | {teacher['metrics']['eval_top1']:.2f} |" in card
    assert "distilled with parallel FEED from 2 teachers" in card


@pytest.mark.parametrize(
    ("kind", "extra", "expect_terms", "card_says"),
    [
        ("ce", [], {"loss/ce"}, "trained with cross-entropy only"),
        ("kd", ["--kd_weight", "1.0"], {"loss/ce", "loss/kd"}, "logit knowledge distillation from the averaged"),
        ("single_feed", ["--teacher_index", "1"], {"loss/ce", "feed/loss", "feed/loss_t0"}, "with FEED from 1 teacher"),
    ],
)
def test_baselines(trained_teachers, tmp_path, kind, extra, expect_terms, card_says):
    teacher_dirs, _ = trained_teachers
    argv = tiny_argv(tmp_path / kind, "--teachers", *teacher_dirs, "--baseline", kind, *extra)
    results = load_recipe("baselines").main(argv)
    logged = set().union(*(set(e) for e in results["log_history"]))
    assert expect_terms <= logged
    assert not ({"loss/ce", "loss/kd", "feed/loss", "feed/loss_t0", "feed/loss_t1"} - expect_terms) & logged
    if kind == "single_feed":
        assert results["feed"]["teachers"] == [Path(teacher_dirs[1]).name]  # recorded portably: the folder's name
    assert card_says in (tmp_path / kind / "README.md").read_text()  # a baseline's card must not claim FEED


def test_kd_baseline_without_weight_is_explained(trained_teachers, tmp_path):
    teacher_dirs, _ = trained_teachers
    with pytest.raises(ValueError, match="kd_weight > 0"):
        load_recipe("baselines").main(tiny_argv(tmp_path, "--teachers", *teacher_dirs, "--baseline", "kd"))


def test_yaml_config_with_command_line_overrides(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": "digits",
                "student": "resnet20_cifar",
                "feed_beta": [50.0],
                "output_dir": str(tmp_path),
                "report_to": "none",
            }
        )
    )
    data_args, args = parse_arguments((DataArguments, FeedConfig), [str(config), "--student", "resnet8_cifar"])
    assert data_args.dataset == "digits" and args.student == "resnet8_cifar" and args.feed_beta == [50.0]


def test_yaml_config_with_unknown_keys_names_them(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path), "feed_betta": 1, "studnet": "x"}))
    with pytest.raises(ValueError, match=r"unknown keys \['feed_betta', 'studnet'\]"):
        parse_arguments((DataArguments, FeedConfig), [str(config)])


def test_shipped_configs_parse(tmp_path):
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "recipes" / "configs").glob("*.yaml"))
    assert len(configs) >= 5
    for config in configs:
        values = yaml.safe_load(config.read_text())
        types = [DataArguments, FeedConfig]
        if "beta_sweep" in values:
            from feed_hf.runs.experiment import ExperimentArguments

            types.append(ExperimentArguments)
        elif "teacher_seeds" in values:
            from feed_hf.runs.jobs import TeacherArguments

            types.append(TeacherArguments)
        elif "num_generations" in values:
            from feed_hf.training.sequential import SequentialArguments

            types.append(SequentialArguments)
        overrides = ["--output_dir", str(tmp_path), "--bf16", "false", "--use_cpu", "true"]
        parsed = parse_arguments(types, [str(config), *overrides])
        assert parsed[1].student, config.name
        if "investigations" in values:  # each spec names real FeedConfig fields with valid values
            from feed_hf.runs.experiment import parse_investigation

            for spec in parsed[2].investigations:
                parse_investigation(spec, parsed[1])
