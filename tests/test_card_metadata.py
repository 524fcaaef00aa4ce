"""From the Python API alone: a tiny run pushed to the loopback Hub carries a card huggingface_hub parses (datasets,
model-index with top-1 and top-5 for the evaluated split, licence, teachers) and a body with the hyperparameter and
per-epoch tables; a fresh process loads it with timm."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from conftest import HUB_TOKEN, SyntheticImages, make_feed_config
from huggingface_hub import ModelCard

from feed_hf import FeedTrainer
from feed_hf.publishing.provenance import resolve_license

_CLASSES = [f"c{i}" for i in range(5)]


def _hub_like_split(split: str, n: int, seed: int) -> datasets.Dataset:
    """A split as `load_dataset("tester/shapes", "small")` leaves it: its info names the Hub files it came from."""
    images = SyntheticImages(n, seed=seed)
    features = datasets.Features(
        pixel_values=datasets.Array3D((3, 32, 32), "float32"), labels=datasets.ClassLabel(names=_CLASSES)
    )
    info = datasets.DatasetInfo(
        features=features,
        dataset_name="shapes",
        config_name="small",
        download_checksums={f"hf://datasets/tester/shapes@{'0' * 40}/small/{split}.parquet": {"num_bytes": 1}},
    )
    rows = {"pixel_values": images.pixels.numpy(), "labels": images.labels.tolist()}
    return datasets.Dataset.from_dict(rows, features=features, info=info, split=split).with_format("torch")


def _config(output_dir: Path, repo_id: str, **overrides):
    return make_feed_config(
        output_dir, hub_model_id=repo_id, hub_token=HUB_TOKEN, max_steps=-1, num_train_epochs=2, **overrides
    )


@pytest.fixture(scope="module")
def pushed(loopback_hub, tmp_path_factory):
    root = tmp_path_factory.mktemp("api-card")
    train, test = _hub_like_split("train", 48, 0), _hub_like_split("test", 32, 1)
    teacher_args = _config(root / "teacher", "tester/api-teacher", model_license="mit")
    teacher = FeedTrainer(args=teacher_args, train_dataset=train, eval_dataset=test)
    teacher.train()
    teacher.evaluate()
    teacher.push_to_hub()
    teacher_sha = loopback_hub.commits("tester/api-teacher")[0]
    args = _config(
        root / "student", "tester/api-student", teachers=["hf-hub:tester/api-teacher"], eval_strategy="epoch"
    )
    student = FeedTrainer(args=args, train_dataset=train, eval_dataset=test)
    student.train()
    metrics = student.evaluate()
    student.push_to_hub()
    return root, student, metrics, teacher_sha


def test_python_api_push_has_hub_metadata_and_tables(loopback_hub, pushed):
    root, _, metrics, teacher_sha = pushed
    card = ModelCard.load("tester/api-student")  # huggingface_hub's own parsing, from the Hub
    data = card.data
    assert data.datasets == ["tester/shapes"] and data.license == "mit"  # the teachers' shared licence
    assert data.teachers == [f"tester/api-teacher@{teacher_sha}"] and data.base_model is None
    assert {"feed", "knowledge-distillation"} <= set(data.tags)
    header = yaml.safe_load(card.content.split("---")[1])
    assert "model-index" in header and "model_name" not in header  # the name lives in model-index only
    by_type = {result.metric_type: result for result in data.eval_results}
    assert set(by_type) == {"accuracy", "top-5-accuracy"}
    assert by_type["accuracy"].metric_value == round(metrics["eval_top1"], 2)
    assert by_type["top-5-accuracy"].metric_value == round(metrics["eval_top5"], 2)
    for result in data.eval_results:
        assert (result.dataset_type, result.dataset_split, result.dataset_config) == ("tester/shapes", "test", "small")
        assert "(%)" in result.metric_name
    assert f"tester/api-teacher/tree/{teacher_sha}" in card.text  # the teacher, linked at its pinned revision
    hyperparameters = card.text.split("### Hyperparameters")[1].split("###")[0]
    assert "| learning_rate | 0.05 |" in hyperparameters and "| num_epochs | 2 |" in hyperparameters
    epochs = markdown_rows(card.text.split("### Training results")[1].split("##")[0])
    assert [(row["Epoch"], row["Step"]) for row in epochs] == [("1.0", "3"), ("2.0", "6")]  # = final evaluate()
    assert float(epochs[-1]["Top-1 (%)"]) == pytest.approx(metrics["eval_top1"], abs=1e-4)
    assert "| learning_rate | 0.05 |" in hyperparameters and "OptimizerNames" not in hyperparameters
    assert "on . " not in card.text and "None" not in card.text

    teacher_card = ModelCard.load("tester/api-teacher")
    assert teacher_card.data.license == "mit" and "knowledge-distillation" not in teacher_card.data.tags
    assert teacher_card.data.eval_results[0].dataset_split == "test"


def test_python_api_record_follows_transformers_conventions(pushed):
    root, student, metrics, _ = pushed
    record = json.loads((root / "student" / "results.json").read_text())
    assert record["metrics"]["eval_top1"] == metrics["eval_top1"] and record["task"] == "pfeed"
    assert record["data"]["num_train"] == 48 and record["data"]["eval_split"] == "test"
    assert record["mixed_precision"] == "no" and record["world_size"] == 1
    assert record["log_history"] == student.state.log_history
    assert json.loads((root / "student" / "eval_results.json").read_text())["eval_top1"] == metrics["eval_top1"]
    assert json.loads((root / "student" / "trainer_state.json").read_text())["global_step"] == student.state.global_step


def test_pushed_student_loads_in_a_fresh_process(pushed, tmp_path):
    root, student, _, _ = pushed
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = student.student.eval()(x)
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys, feed_hf, timm, torch\n"
        "model = timm.create_model('hf-hub:tester/api-student', pretrained=True).eval()\n"
        f"torch.save(model(torch.load({str(tmp_path / 'x.pt')!r})).detach(), {str(tmp_path / 'y.pt')!r})\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_HOME=str(tmp_path / "fresh-cache"), PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "y.pt"), expected)


def test_save_model_of_a_ce_model_writes_an_honest_card(tmp_path):
    trainer = FeedTrainer(args=make_feed_config(tmp_path / "run"), train_dataset=SyntheticImages(32))
    trainer.train()
    trainer.save_model(str(tmp_path / "export"))
    card = ModelCard.load(tmp_path / "export" / "README.md")
    assert card.data.license is None and "Licence: not chosen" in card.text
    assert "knowledge-distillation" not in card.data.tags and "feed" not in card.data.tags
    assert card.data.eval_results is None and card.data.model_name is None  # not evaluated: no model-index
    assert "trained with cross-entropy only" in card.text and "| max_steps" not in card.text
    assert "| training_steps | 4 |" in card.text and "| training examples | 32 |" in card.text
    assert json.loads((tmp_path / "export" / "results.json").read_text())["task"] == "ce"


def test_licence_is_the_users_or_the_one_every_source_shares_and_a_conflict_is_named():
    mit = {"role": "teacher 0", "name": "hf-hub:tester/api-teacher@abc", "license": "mit"}
    apache = {"role": "student", "name": "timm/resnet18.a1_in1k", "license": "apache-2.0"}
    passed_in = {"role": "teacher 1", "name": "CifarResNet (a module passed in)", "license": None}
    assert resolve_license("apache-2.0", "model_license", [mit])["id"] == "apache-2.0"
    assert resolve_license(None, "model_license", [mit]) == {"id": "mit", "source": "inherited", "sources": [mit]}
    conflict = resolve_license(None, "model_license", [apache, mit])
    assert conflict["id"] is None and conflict["conflict"] and "does not pick one" in conflict["reason"]
    assert "student timm/resnet18.a1_in1k: apache-2.0" in conflict["reason"] and "mit" in conflict["reason"]
    unknown = resolve_license(None, "model_license", [mit, passed_in])
    assert unknown["id"] is None and "CifarResNet (a module passed in) is unknown" in unknown["reason"]
    assert resolve_license(None, "model_license", [])["reason"].startswith("no licence chosen")


def markdown_rows(text: str) -> list[dict[str, str]]:
    """The rows of the first markdown table in `text`, by column name."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


def test_a_format_builders_name_recorded_by_an_older_run_is_not_the_datasets_name_on_the_card():
    from feed_hf.publishing.card.metadata import dataset_label

    assert dataset_label({"dataset_name": "parquet", "dataset": "cifar10-jpeg"}) == "cifar10-jpeg"
    assert dataset_label({"dataset_name": "imagefolder", "dataset_id": "ns/pets"}) == "ns/pets"
    assert dataset_label({"dataset_name": "CIFAR-10", "dataset": "cifar10-jpeg"}) == "CIFAR-10"  # a real name wins
