"""The record and the card say what really ran (issue 18, item 4; issue 19, item 8): where the weights came from
(a module passed in is one), the precision the accelerator applied, every source's licence (a conflict named, not
resolved), the data's name (never a file format's), a backbone as a backbone with snippets that run, the lineage of
a student started from an export, and what size each teacher was fed."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import timm
import torch
from conftest import HUB_TOKEN, SyntheticImages, make_feed_config
from huggingface_hub import ModelCard
from PIL import Image

from feed_hf import FeedTrainer
from feed_hf.data.loading import DataArguments
from feed_hf.publishing.export import export_student, write_export_file
from feed_hf.publishing.hub import push_export
from feed_hf.training.train_model import train_model

ROOT = Path(__file__).resolve().parent.parent


def _hub_model(repo_id: str, licence: str, tmp_path: Path, num_classes: int = 7) -> str:
    """A timm-format repo on the loopback Hub whose card names `licence` (no training: random weights)."""
    folder = tmp_path / repo_id.replace("/", "--")
    export_student(timm.create_model("resnet8_cifar", num_classes=num_classes), folder, {"teachers": []})
    write_export_file(folder, "results.json", json.dumps({"license": {"id": licence, "source": "model_license"}}))
    push_export(folder, repo_id, token=HUB_TOKEN)
    return repo_id


def _record(folder: Path) -> tuple[dict, ModelCard]:
    return json.loads((folder / "results.json").read_text()), ModelCard.load(folder / "README.md")


def test_modules_passed_in_are_recorded_as_such_whatever_their_pretrained_cfg_claims(loopback_hub, tmp_path, caplog):
    hub_teacher = _hub_model("tester/truth-teacher", "mit", tmp_path)
    torch.manual_seed(0)
    claims_a_hub_origin = timm.create_model("test_vit", num_classes=0)  # random weights; cfg: timm/test_vit.r160…
    student = timm.create_model("test_resnet", num_classes=5)  # random weights; cfg: timm/test_resnet.r160…
    assert "test_vit" in claims_a_hub_origin.pretrained_cfg["hf_hub_id"]
    args = make_feed_config(tmp_path / "run", max_steps=1, feed_beta=[1.0])
    caplog.set_level(logging.INFO, logger="feed_hf")
    trainer = FeedTrainer(
        model=student,
        teachers=[claims_a_hub_origin, f"hf-hub:{hub_teacher}"],
        args=args,
        train_dataset=SyntheticImages(16),
    )
    trainer.train()
    record, card = _record(tmp_path / "run")
    passed_in, from_hub = record["feed"]["resolved_teachers"]
    assert passed_in["hf_hub_id"] is None and passed_in["revision"] is None
    assert (
        passed_in["source"] == "VisionTransformer (a module passed in)" and "module passed in" in passed_in["weights"]
    )
    assert from_hub["hf_hub_id"] == hub_teacher and len(from_hub["revision"]) == 40  # loaded by feed-hf: pinned
    assert card.data.teachers == [f"{hub_teacher}@{from_hub['revision']}"]
    assert "timm/test_vit" not in card.content and "timm/test_resnet" not in card.content  # no Hub origin claimed
    assert record["student_source"]["kind"] == "module passed in" and record["base_model"] is None
    assert card.data.base_model is None and "Initialisation: a module passed in" in card.text
    assert "random (trained from scratch)" not in card.text  # nor is that claimed of a module passed in
    licence = card.text.split("- Licence: ")[1].splitlines()[0]
    assert card.data.license is None and "test_resnet (a module passed in), VisionTransformer (a module" in licence
    assert "@None" not in caplog.text


def test_the_start_of_run_summary_logs_and_records_what_each_teacher_is_fed(tmp_path, caplog):
    torch.manual_seed(0)
    fixed_64 = timm.create_model("test_vit", num_classes=0, dynamic_img_size=False, img_size=64)  # 64×64 only
    caplog.set_level(logging.INFO, logger="feed_hf")
    trainer = FeedTrainer(
        teachers=[fixed_64],
        args=make_feed_config(tmp_path / "run", max_steps=1, feed_beta=[1.0]),
        train_dataset=SyntheticImages(16, size=24),  # fed as they are: the student runs at 24×24
    )
    trainer.train()
    summary = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("FEED run:"))
    assert "student resnet8_cifar at 24×24, from train_dataset's pixel_values" in summary
    assert "teacher 0 (VisionTransformer (a module passed in)) fed 64×64 (resized from 24×24)" in summary
    upsampled = [r for r in caplog.records if r.levelno == logging.WARNING and "upsampled" in r.getMessage()]
    assert len(upsampled) == 1 and "takes 64×64 inputs: the student's 24×24 images are upsampled" in upsampled[0].msg
    feed = json.loads((tmp_path / "run" / "feed_config.json").read_text())
    assert feed["student_input_size"] == {"size": [24, 24], "from": "train_dataset's pixel_values"}
    teacher = feed["resolved_teachers"][0]
    assert teacher["input_size"] == [64, 64] and teacher["resized_from_student_input"] is True


def test_the_record_says_the_precision_the_accelerator_ran(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what an accelerate config with bf16 sets
    args = make_feed_config(tmp_path / "run", max_steps=1)
    trainer = FeedTrainer(args=args, train_dataset=SyntheticImages(16))
    assert not args.bf16 and trainer.accelerator.mixed_precision == "bf16"
    trainer.train()
    record, card = _record(tmp_path / "run")
    assert record["mixed_precision"] == "bf16"
    assert record["hyperparameters"]["mixed_precision_training"] == "Native AMP (bf16)"
    assert "| mixed precision | bf16 |" in card.text


def test_licences_of_the_student_and_teachers_are_all_accounted_for_and_a_conflict_is_named(loopback_hub, tmp_path):
    base = _hub_model("tester/apache-base", "apache-2.0", tmp_path, num_classes=10)
    teacher = _hub_model("tester/mit-teacher", "mit", tmp_path)
    same = _hub_model("tester/mit-base", "mit", tmp_path, num_classes=10)
    runs = {}
    for name, student in (("conflict", base), ("shared", same)):
        args = make_feed_config(
            tmp_path / name, student=f"hf-hub:{student}", teachers=[f"hf-hub:{teacher}"], max_steps=1
        )
        FeedTrainer(args=args, train_dataset=SyntheticImages(16)).train()
        runs[name] = _record(tmp_path / name)
    record, card = runs["conflict"]
    assert record["license"]["id"] is None and record["license"]["conflict"] is True and card.data.license is None
    line = card.text.split("- Licence: ")[1].splitlines()[0]
    assert "differ" in line and "does not pick one" in line
    assert re.search(r"student tester/apache-base@[0-9a-f]{40}: apache-2\.0", line) and "mit-teacher@" in line
    assert card.data.base_model == base and "pretrained weights of `tester/apache-base@" in card.text
    record, card = runs["shared"]
    assert card.data.license == "mit" and record["license"]["source"] == "inherited"
    assert [s["license"] for s in record["license"]["sources"]] == ["mit", "mit"]  # the student's and the teacher's


def _parquet_split(folder: Path, split: str, n: int, seed: int) -> datasets.Dataset:
    images = SyntheticImages(n, seed=seed)
    rows = {"pixel_values": images.pixels.numpy().tolist(), "labels": images.labels.tolist()}
    folder.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows).to_parquet(str(folder / f"{split}.parquet"))
    loaded = datasets.load_dataset("parquet", data_files=str(folder / f"{split}.parquet"), split="train")
    features = loaded.features.copy()
    features["pixel_values"] = datasets.Array3D((3, 32, 32), "float32")
    return loaded.cast(features).with_format("torch")


def test_a_file_format_is_never_the_dataset_name_nor_default_an_invented_config(loopback_hub, tmp_path):
    train = _parquet_split(tmp_path / "data", "train", 32, 0)
    test = _parquet_split(tmp_path / "data", "test", 16, 1)
    assert (train.info.builder_name, train.info.config_name) == ("parquet", "default")  # what datasets says
    for name, extra in (("plain", {}), ("named", {"dataset_id": "tester/shapes"})):
        args = make_feed_config(tmp_path / name, max_steps=1, num_labels=5, **extra)
        trainer = FeedTrainer(args=args, train_dataset=train, eval_dataset=test)
        trainer.train()
        trainer.evaluate()
        record, card = _record(tmp_path / name)
        assert record["data"].get("dataset_name") in (None,) and "dataset_config_name" not in record["data"]
        result = card.data.eval_results[0]
        assert result.dataset_name != "parquet" and result.dataset_config is None
        assert "parquet" not in card.text.split("## Results")[1].splitlines()[2]  # "Evaluated on …"
    assert result.dataset_type == "tester/shapes" and card.data.datasets == ["tester/shapes"]


def _run_snippets(card_text: str, cwd: Path, tmp_path: Path) -> list[str]:
    """Run each python block of the card's "How to use", as written, with an image at its path; their outputs."""
    image = tmp_path / "image.png"
    Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()).save(image)
    how_to = card_text.split("## How to use")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", how_to, re.S)
    assert len(blocks) == 2
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    outputs = []
    for block in blocks:
        code = block.replace("path/to/image.jpg", str(image))
        last = code.strip().splitlines()[-1].split("=")[0].strip()  # the result the snippet ends with
        code += f"\nimport numpy; print('shape', numpy.asarray({last}).shape)\n"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)
        assert done.returncode == 0, f"{code}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout.strip().splitlines()[-1])
    return outputs


def _local_teachers(root: Path) -> list[str]:
    folders = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        folder = root / f"teacher_{seed}"
        export_student(timm.create_model("resnet8_cifar", num_classes=10), folder, {"teachers": []})
        folders.append(str(folder))
    return folders


def _data(**overrides) -> DataArguments:
    settings = dict(dataset="digits", max_train_samples=64, max_eval_samples=32, horizontal_flip=False)
    return DataArguments(**{**settings, **overrides})


def test_a_label_free_backbone_card_says_feature_extraction_and_its_snippets_run(tmp_path):
    teachers = _local_teachers(tmp_path)
    args = make_feed_config(tmp_path / "backbone", num_labels=None, input_size=16, teachers=teachers, feed_beta=[1.0])
    train_model(_data(label_column="none"), args)
    record, card = _record(tmp_path / "backbone")
    assert record["label_free"] is True and card.data.pipeline_tag == "image-feature-extraction"
    assert "image-classification" not in card.data.tags and "image-feature-extraction" in card.data.tags
    loss = card.text.split("- Loss: ")[1].splitlines()[0]
    assert loss.startswith("Σ β_n·FEED_n (no cross-entropy") and "CE +" not in loss
    assert "backbone (feature extractor)" in card.text and "without labels" in card.text
    assert _run_snippets(card.text, tmp_path, tmp_path) == ["shape (1, 64)", "shape (1, 64)"]  # features, both


def test_a_classifier_card_snippets_run(tmp_path):
    args = make_feed_config(tmp_path / "classifier", num_labels=None, input_size=16)
    train_model(_data(), args)
    _, card = _record(tmp_path / "classifier")
    assert card.data.pipeline_tag == "image-classification"
    outputs = _run_snippets(card.text, tmp_path, tmp_path)
    assert outputs[0] == "shape (1, 10)" and outputs[1].startswith("shape (")  # probabilities; predictions


def test_a_student_started_from_a_local_export_records_that_lineage(tmp_path):
    teachers = _local_teachers(tmp_path)
    first = make_feed_config(
        tmp_path / "first", num_labels=None, input_size=16, teachers=teachers, feed_beta=[1.0], model_license="mit"
    )
    train_model(_data(), first)
    second = make_feed_config(
        tmp_path / "second", num_labels=None, input_size=16, student=f"local-dir:{first.output_dir}"
    )
    train_model(_data(), second)
    record, card = _record(tmp_path / "second")
    lineage = record["student_source"]
    assert lineage["kind"] == "feed-hf export" and lineage["name"] == "first" and lineage["license"] == "mit"
    assert lineage["teachers"] == ["teacher_1", "teacher_2"]
    init = card.text.split("- Initialisation: ")[1].splitlines()[0]
    assert "the feed-hf export `first`, itself distilled from `teacher_1`, `teacher_2`" in init
    assert "licence `mit`" in init and "random" not in init
    assert card.data.license == "mit" and record["license"]["source"] == "inherited"  # its licence carries over
    assert str(tmp_path) not in card.content and str(tmp_path) not in json.dumps(record["student_source"])
