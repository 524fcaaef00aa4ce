"""`feed-hf evaluate --protocol knn linear`: a student and any teacher spec judged as backbones on a labelled set,
recorded in the student's results.json and card (model-index for the student, a table for all)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from foundation_fixtures import save_family
from huggingface_hub import ModelCard
from PIL import Image

from feed_hf import FeedTrainer
from feed_hf_cli import main, run_command

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

COLOURS = {"blue": (20, 40, 230), "red": (230, 30, 20)}


def _colour_folder(root):
    """A two-class imagefolder any network separates: near-solid red vs near-solid blue images (known answer 100 %)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 6)):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = np.clip(np.array(colour) + rng.integers(-10, 10, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


@pytest.fixture
def student_export(tmp_path, feed_config_factory, synthetic_images, tiny_teachers):
    args = feed_config_factory(tmp_path / "student", feed_beta=[1.0], max_steps=1)
    trainer = FeedTrainer(teachers=tiny_teachers[:1], args=args, train_dataset=synthetic_images(16))
    trainer.train()
    trainer.save_model()
    return tmp_path / "student"


def test_student_and_a_transformers_teacher_are_judged_and_the_card_shows_both(tmp_path, student_export, capsys):
    data = ["--dataset", str(_colour_folder(tmp_path / "colours")), "--split", "test"]
    report = run_command("evaluate", ["--model", str(student_export), "--protocol", "knn", "linear", *data])
    assert report["knn"]["top1"] == 100.0 and report["linear"]["top1"] == 100.0  # the known answer
    assert report["num_train"] == 24 and report["num_test"] == 12
    teacher = tmp_path / "dino"
    save_family(teacher, "dinov2")
    main(
        ["evaluate", "--model", f"local-dir:{teacher}", "--protocol", "knn", *data, "--record_in", str(student_export)]
    )
    assert "knn top1" in capsys.readouterr().out
    results = json.loads((student_export / "results.json").read_text())
    judged = results["backbone_eval"]
    assert {entry["is_this_model"] for entry in judged.values()} == {True, False}
    assert judged["local-dir:dino"]["knn"]["top1"] == 100.0 and "linear" not in judged["local-dir:dino"]
    card = ModelCard.load(student_export / "README.md")
    indexed = {(r.metric_type, r.metric_value) for r in card.data.eval_results or []}
    assert ("knn_accuracy", 100.0) in indexed and ("linear_accuracy", 100.0) in indexed  # the student's own
    assert "## Judged as a backbone" in card.text and "local-dir:dino" in card.text


def test_a_mislabelled_set_gives_chance_not_a_perfect_score(tmp_path, student_export):
    root = _colour_folder(tmp_path / "colours")
    for index in range(6):  # test images of each colour filed under the other class: a known answer of 0 %
        (root / "test" / "red" / f"{index}.png").rename(root / "test" / "red" / f"tmp{index}.png")
        (root / "test" / "blue" / f"{index}.png").rename(root / "test" / "red" / f"{index}.png")
        (root / "test" / "red" / f"tmp{index}.png").rename(root / "test" / "blue" / f"{index}.png")
    report = run_command(
        "evaluate", ["--model", str(student_export), "--protocol", "knn", "--dataset", str(root), "--split", "test"]
    )
    assert report["knn"]["top1"] == 0.0


def test_an_unknown_protocol_is_refused_by_name(tmp_path, student_export):
    with pytest.raises(ValueError, match="--protocol 'svm'"):
        run_command(
            "evaluate", ["--model", str(student_export), "--protocol", "svm", "--dataset", "digits", "--split", "eval"]
        )


def _judge(model, *split_args):
    argv = ["--model", str(model), "--protocol", "knn", "linear", "--dataset", "digits", "--seed", "0"]
    return run_command("evaluate", [*argv, *split_args])


def test_a_probe_split_of_its_own_may_be_the_training_rows_but_never_the_test_rows(student_export):
    """An explicit --probe_train_split is the usual protocol's probe (fitted on training images): it may overlap
    --train_split, gives what the run-split route gives on the same rows, and is refused when it shares rows with
    --split; --split itself stays refused on the run's training rows."""
    own = _judge(
        student_export,
        "--train_split",
        "train[:100]",
        "--probe_train_split",
        "train[:100]",
        "--split",
        "train[100:160]",
    )
    via_run_split = _judge(
        student_export,
        "--train_split",
        "train[:100]",
        "--eval_split",
        "train[100:160]",
        "--probe_train_split",
        "train",
        "--split",
        "train[100:160]",
    )
    assert own["num_train"] == 100 and own["num_test"] == 60
    assert own["knn"] == via_run_split["knn"] and own["linear"]["top1"] == via_run_split["linear"]["top1"]
    with pytest.raises(ValueError, match=r"'train\[:120\]' and eval_split 'train\[100:160\]' share 20 rows"):
        _judge(
            student_export,
            "--train_split",
            "train[:100]",
            "--probe_train_split",
            "train[:120]",
            "--split",
            "train[100:160]",
        )
    with pytest.raises(ValueError, match=r"'train\[:120\]' and eval_split 'train\[100:160\]' share 20 rows"):
        _judge(
            student_export,
            "--train_split",
            "train[:120]",
            "--probe_train_split",
            "train[:100]",
            "--split",
            "train[100:160]",
        )
    with pytest.raises(ValueError, match=r"--probe_train_split 'train\[:100\]' with --split 'eval' carved"):
        _judge(student_export, "--probe_train_split", "train[:100]", "--split", "eval")
