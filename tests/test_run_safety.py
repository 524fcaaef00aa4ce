"""A finished training never loses its model; nothing is trained over an export or a teacher; resume checks."""

import json

import pytest
import timm
import torch
from conftest import make_feed_config
from recipe_helpers import load_recipe, tiny_argv

from feed_hf import FeedTrainer
from feed_hf.publishing.export import export_student, has_export
from feed_hf.training.train_model import RunIncompleteError, read_results


def _export_teacher(folder, seed: int = 1, architecture: str = "resnet8_cifar"):
    torch.manual_seed(seed)
    export_student(timm.create_model(architecture, num_classes=7), folder, {"teachers": []})
    return str(folder)


def _weights(folder) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in timm.create_model(f"local-dir:{folder}", pretrained=True).state_dict().items()}


def test_python_api_train_ends_with_a_loadable_export(tmp_path, synthetic_images):
    trainer = FeedTrainer(args=make_feed_config(tmp_path / "run"), train_dataset=synthetic_images(32))
    trainer.train()  # no save_model() call: the promise holds for the API too
    reloaded = timm.create_model(f"local-dir:{tmp_path / 'run'}", pretrained=True).eval()
    pixels = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(reloaded(pixels), trainer.student.eval()(pixels))


@pytest.mark.parametrize("spelling", ["{}", "local-dir:{}", "resnet8_cifar={}/model.safetensors"])
def test_a_teachers_folder_is_never_the_output_dir(tmp_path, synthetic_images, spelling):
    teacher_dir = _export_teacher(tmp_path / "teacher")
    before = _weights(teacher_dir)
    args = make_feed_config(teacher_dir, teachers=[spelling.format(teacher_dir)], overwrite_output_dir=True)
    trainer = FeedTrainer(args=args, train_dataset=synthetic_images(32))
    with pytest.raises(ValueError, match="is the folder of one of this run's teachers"):
        trainer.train()
    with pytest.raises(ValueError, match="is the folder of one of this run's teachers"):
        trainer.save_model(teacher_dir)
    for name, tensor in _weights(teacher_dir).items():
        assert torch.equal(tensor, before[name]), name


def test_training_over_an_export_needs_overwrite_output_dir(tmp_path, synthetic_images):
    FeedTrainer(args=make_feed_config(tmp_path / "run"), train_dataset=synthetic_images(32)).train()
    before = _weights(tmp_path / "run")
    again = FeedTrainer(args=make_feed_config(tmp_path / "run", seed=5), train_dataset=synthetic_images(32))
    with pytest.raises(ValueError, match="already holds an exported model.*overwrite_output_dir"):
        again.train()
    assert all(torch.equal(v, before[k]) for k, v in _weights(tmp_path / "run").items())
    args = make_feed_config(tmp_path / "run", seed=5, overwrite_output_dir=True)
    FeedTrainer(args=args, train_dataset=synthetic_images(32)).train()
    assert any(not torch.equal(v, before[k]) for k, v in _weights(tmp_path / "run").items())


def test_resuming_is_not_overwriting(tmp_path, synthetic_images):
    args = make_feed_config(tmp_path / "run", max_steps=2, save_strategy="steps", save_steps=2)
    FeedTrainer(args=args, train_dataset=synthetic_images(32)).train()
    longer = make_feed_config(tmp_path / "run", max_steps=4, save_strategy="steps", save_steps=2)
    FeedTrainer(args=longer, train_dataset=synthetic_images(32)).train(
        resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2")
    )
    assert has_export(tmp_path / "run")


def _resume_with(tmp_path, synthetic_images, initial_teachers, **changes):
    run = tmp_path / "run"
    base = dict(max_steps=2, save_strategy="steps", save_steps=2)
    first = make_feed_config(run, teachers=initial_teachers[:2], **base)
    FeedTrainer(args=first, train_dataset=synthetic_images(32)).train()
    settings = {**base, "teachers": initial_teachers[:2], **changes}
    other = FeedTrainer(args=make_feed_config(run, **settings), train_dataset=synthetic_images(32))
    other.train(resume_from_checkpoint=str(run / "checkpoint-2"))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"student": "resnet14_cifar"}, "student: 'resnet8_cifar' in the checkpoint, 'resnet14_cifar' now"),
        ({"num_labels": 6}, "num_classes: 5 in the checkpoint, 6 now"),
        ({"connector_num_layers": 2}, "connector: .*'num_layers': 3.* in the checkpoint"),
        ({"teachers": "first-only"}, "teachers: .* in the checkpoint"),
        ({"teachers": "other-third"}, "teachers: .* in the checkpoint"),
    ],
)
def test_resume_of_another_kind_of_run_is_refused_naming_what_changed(tmp_path, synthetic_images, changes, named):
    teachers = [_export_teacher(tmp_path / f"teacher_{i}", seed=i) for i in range(3)]
    if changes.get("teachers") == "first-only":
        changes = {"teachers": teachers[:1]}
    elif changes.get("teachers") == "other-third":  # same count and shapes, another teacher: still refused
        changes = {"teachers": [teachers[0], teachers[2]]}
    with pytest.raises(ValueError, match=f"cannot resume from .*checkpoint-2: it was made by another run .*{named}"):
        _resume_with(tmp_path, synthetic_images, teachers, **changes)


def test_failed_evaluation_after_training_keeps_the_export_and_fails_the_run(tmp_path, monkeypatch):
    def broken_evaluate(self, *args, **kwargs):
        raise IndexError("Target 7 is out of bounds.")

    monkeypatch.setattr(FeedTrainer, "evaluate", broken_evaluate)
    with pytest.raises(RunIncompleteError, match="student is exported to .* but the evaluation failed"):
        load_recipe("baselines").main(tiny_argv(tmp_path / "run"))
    assert has_export(tmp_path / "run")
    timm.create_model(f"local-dir:{tmp_path / 'run'}", pretrained=True)
    recorded = json.loads((tmp_path / "run" / "results.json").read_text())
    assert recorded["metrics"] == {} and "evaluation failed" in recorded["failures"][0]
    assert read_results(tmp_path / "run") is None  # not a finished run: the grid and sFEED redo it


def test_a_malformed_record_beside_a_teacher_does_not_cost_the_model(tmp_path, synthetic_images):
    teacher_dir = _export_teacher(tmp_path / "teacher")
    (tmp_path / "teacher" / "results.json").write_text("{not json")
    args = make_feed_config(tmp_path / "run", teachers=[teacher_dir])
    FeedTrainer(args=args, train_dataset=synthetic_images(32)).train()
    assert has_export(tmp_path / "run")
