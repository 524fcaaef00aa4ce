"""The Trainer contract (issue 19): each transformers habit works as in transformers or is refused by name.

Optimizers (item 1), data_collator with the teacher caches (item 3), label-free data through the Python API (item 6),
the helpers importable from feed_hf and transformers' positional order (item 7), teachers placed by accelerate and
the backends refused (item 11), and the TrainingArguments FEED refuses (docs/trainer_contract.md).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import timm
import torch
from accelerate.utils import is_compiled_module
from torch.nn import functional as F
from transformers import Trainer, TrainingArguments

import feed_hf
from feed_hf import FeedConfig, FeedTrainer
from feed_hf.training.distributed import check_distributed_backend
from feed_hf.training.trainer_arguments import REFUSED_OPTIONS

ROOT = Path(__file__).resolve().parent.parent


def _clone(module):
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _changed(before, module, prefix):
    after = module.state_dict()
    return [name for name, value in before.items() if name.startswith(prefix) and not torch.equal(value, after[name])]


def _student():
    torch.manual_seed(0)
    return timm.create_model("resnet8_cifar", num_classes=5)


# item 1: optimizers=(optimizer, scheduler) and optimizer_cls_and_kwargs


def test_an_optimizer_without_the_connectors_is_refused_naming_them(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    student = _student()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    with pytest.raises(ValueError, match=r"connectors\.0, connectors\.1: .*trainer\.model\.parameters\(\)"):
        FeedTrainer(
            model=student,
            teachers=tiny_teachers,
            args=feed_config_factory(tmp_path),
            train_dataset=synthetic_images(16),
            optimizers=(optimizer, scheduler),
        )


def test_an_optimizer_set_over_trainer_model_trains_the_connectors_on_its_schedule(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    args = feed_config_factory(tmp_path, max_steps=2, logging_steps=1)
    trainer = FeedTrainer(model=_student(), teachers=tiny_teachers, args=args, train_dataset=synthetic_images(32))
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.04, momentum=0.9)
    trainer.lr_scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, 1, gamma=0.5)
    before = _clone(trainer.model)
    trainer.train()
    assert _changed(before, trainer.model, "connectors.0.") and _changed(before, trainer.model, "connectors.1.")
    rates = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    assert rates == pytest.approx([0.04, 0.02])  # the user's scheduler, not lr_scheduler_type


def test_an_optimizer_set_without_the_connectors_is_refused_when_training_starts(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    trainer = FeedTrainer(
        model=_student(), teachers=tiny_teachers, args=feed_config_factory(tmp_path), train_dataset=synthetic_images(16)
    )
    trainer.optimizer = torch.optim.SGD(trainer.student.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"trainer\.optimizer does not hold .*connectors\.0, connectors\.1"):
        trainer.train()


def test_optimizer_cls_and_kwargs_builds_the_optimizer_over_student_and_connectors(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    args = feed_config_factory(tmp_path, max_steps=2)
    trainer = FeedTrainer(
        model=_student(),
        teachers=tiny_teachers,
        args=args,
        train_dataset=synthetic_images(32),
        optimizer_cls_and_kwargs=(torch.optim.SGD, {"lr": 0.03, "momentum": 0.9}),
    )
    before = _clone(trainer.model)
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate's wrapper
    assert type(optimizer) is torch.optim.SGD and optimizer.defaults["momentum"] == 0.9
    for prefix in ("student.conv1", "connectors.0.", "connectors.1."):
        assert _changed(before, trainer.model, prefix), prefix


# item 3: data_collator with cache_teacher_features / teacher_store


def _rebuilding_collator(items):
    """The transformers image-classification guide's collate_fn: the batch rebuilt from two keys."""
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in items]),
        "labels": torch.tensor([int(item["labels"]) for item in items]),
    }


def _doubling_collator(items):
    return {**_rebuilding_collator(items), "pixel_values": 2 * torch.stack([item["pixel_values"] for item in items])}


def _noisy_collator(items):
    batch = _rebuilding_collator(items)
    return {**batch, "pixel_values": batch["pixel_values"] + 0.01 * torch.randn_like(batch["pixel_values"])}


@pytest.mark.parametrize("remove_unused_columns", [False, True])
def test_a_collator_that_rebuilds_the_batch_trains_with_cached_teacher_maps_as_with_live_teachers(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory, remove_unused_columns
):
    states = {}
    for cached in (False, True):
        args = feed_config_factory(
            tmp_path / f"cached={cached}",
            max_steps=3,
            cache_teacher_features=cached,
            remove_unused_columns=remove_unused_columns,
        )
        trainer = FeedTrainer(
            model=_student(),
            teachers=tiny_teachers,
            args=args,
            train_dataset=synthetic_images(48),
            data_collator=_rebuilding_collator,
        )
        trainer.train()
        states[cached] = _clone(trainer.model)
    for name, tensor in states[False].items():
        torch.testing.assert_close(states[True][name], tensor, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("option", ["cache_teacher_features", "teacher_store"])
@pytest.mark.parametrize(
    ("collator", "why"), [(_doubling_collator, "are not the items' own"), (_noisy_collator, "differed between two")]
)
def test_a_collator_that_changes_the_pixels_is_refused_before_the_teacher_pass(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory, option, collator, why
):
    store_dir = tmp_path / "stores"
    args = feed_config_factory(tmp_path / "run", teacher_store_dir=str(store_dir), **{option: True})
    with pytest.raises(ValueError, match=rf"data_collator {collator.__name__}: its pixel_values {why}.*{option}"):
        FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16), data_collator=collator)
    assert not store_dir.exists()  # refused before any teacher ran


# item 6: label-free data through the Python API


class _Unlabelled(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"pixel_values": self.images[index]["pixel_values"]}


def test_the_trainer_detects_data_without_labels_and_evaluate_returns_the_feed_loss(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    args = feed_config_factory(tmp_path, num_labels=None, feed_beta=[1.0], max_steps=2)
    trainer = FeedTrainer(
        teachers=tiny_teachers,
        args=args,
        train_dataset=_Unlabelled(synthetic_images(32)),
        eval_dataset=_Unlabelled(synthetic_images(16, seed=1)),
    )
    assert trainer.label_free and trainer.student.num_classes == 0  # a backbone, as from the CLI
    trainer.train()
    assert not any("loss/ce" in entry for entry in trainer.state.log_history)  # Σβ·FEED alone
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] > 0 and "eval_top1" not in metrics
    with torch.no_grad():  # eval_loss is Σβ·FEED of the student's connected maps against the teachers' maps
        pixels = torch.stack([trainer.eval_dataset[i]["pixel_values"] for i in range(16)])
        feed_student = trainer.model.eval()
        _, student_map = feed_student.feature_tap.logits_and_map(feed_student.student, pixels)
        connected = [connector(student_map) for connector in feed_student.connectors]
        teacher_maps, _ = trainer.teacher_outputs(pixels)
        expected, _ = feed_hf.feed_loss(connected, teacher_maps, [1.0, 1.0], 1, "mean")
    assert metrics["eval_loss"] == pytest.approx(float(expected), rel=1e-4)


def test_num_labels_zero_is_the_one_way_to_ask_for_a_backbone(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    args = feed_config_factory(tmp_path, num_labels=0)
    assert feed_hf.create_student(args).num_classes == 0
    assert feed_hf.create_student(args, 7).num_classes == 0  # the config's 0 wins, as any num_labels does
    trainer = FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=_Unlabelled(synthetic_images(16)))
    assert trainer.student.num_classes == 0
    with pytest.raises(ValueError, match="no classes .*num_labels=0.* but train_dataset has labels"):
        FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16))
    with pytest.raises(ValueError, match="num_labels must be >= 1 .*or 0 for a backbone.*got -1"):
        feed_config_factory(tmp_path, num_labels=-1)


def test_label_free_data_without_teachers_is_refused_from_the_python_api(
    tmp_path, synthetic_images, feed_config_factory
):
    args = feed_config_factory(tmp_path, num_labels=None)
    with pytest.raises(ValueError, match="no labels .*teachers is empty"):
        FeedTrainer(args=args, train_dataset=_Unlabelled(synthetic_images(16)))


# item 7: the helpers the README and the messages name, and transformers' positional order


def _names_used_from_feed_hf() -> set[str]:
    texts = [(ROOT / "README.md").read_text(), *(path.read_text() for path in (ROOT / "feed_hf").rglob("*.py"))]
    names = set()
    for text in texts:
        for imported in re.findall(r"^\s*from feed_hf(?:\.\w+)* import ([\w, ]+)$", text, flags=re.MULTILINE):
            names.update(name.strip() for name in imported.split(","))
        names.update(re.findall(r"\bfeed_hf\.([a-zA-Z_]\w*)\(", text))
    return names


def test_every_helper_the_readme_and_the_messages_name_is_importable_from_feed_hf():
    names = _names_used_from_feed_hf()
    assert {"create_student", "to_pixel_values", "FeedTrainer"} <= names  # the scan sees what the README uses
    missing = sorted(name for name in names if not hasattr(feed_hf, name))
    assert not missing, f"named in the README or a message but not importable from feed_hf: {missing}"
    assert set(feed_hf.__all__) >= names


def test_transformers_positional_order_is_answered_by_name(tmp_path, feed_config_factory):
    with pytest.raises(TypeError, match="second positional argument is `teachers`.*FeedTrainer\\(model, args=config"):
        FeedTrainer(_student(), feed_config_factory(tmp_path))


# item 11: teachers under accelerate, backends refused


@pytest.mark.parametrize("torch_compile", [False, True])
def test_teachers_are_placed_by_accelerate_in_evaluation_mode(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory, torch_compile
):
    args = feed_config_factory(tmp_path, torch_compile=torch_compile)
    trainer = FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16))
    for teacher in trainer.teachers:
        assert teacher in trainer.accelerator._models  # accelerator.prepare_model placed it
        assert isinstance(teacher, feed_hf.FrozenTeacher) and not teacher.training  # not DDP-wrapped, frozen
        assert not is_compiled_module(teacher)  # torch_compile is the student's; compile_teachers the teachers'
        assert next(teacher.parameters()).device == trainer.args.device


@pytest.mark.parametrize("teacher_dtype", ["float32", "bfloat16"])
def test_mixed_precision_leaves_the_teachers_precision_to_teacher_dtype(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory, teacher_dtype
):
    pixels = torch.stack([synthetic_images(4)[i]["pixel_values"] for i in range(4)])
    maps = {}
    for bf16 in (False, True):
        args = feed_config_factory(tmp_path / f"bf16={bf16}", bf16=bf16, teacher_dtype=teacher_dtype)
        trainer = FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16))
        assert trainer.accelerator.mixed_precision == ("bf16" if bf16 else "no")
        maps[bf16] = trainer.teacher_outputs(pixels)[0][0]
    assert maps[True].dtype == torch.float32  # accelerate hands teacher outputs back in fp32
    torch.testing.assert_close(maps[True].float(), maps[False].float(), rtol=0, atol=0)  # same compute either way


@pytest.mark.parametrize(
    ("environment", "overrides", "named"),
    [
        ({"ACCELERATE_USE_FSDP": "true"}, {}, "FSDP"),
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, {}, "DeepSpeed"),
        ({}, {"fsdp": "full_shard"}, "fsdp="),
    ],
)
def test_sharded_backends_are_refused_by_name_before_anything_is_built(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory, monkeypatch, environment, overrides, named
):
    args = feed_config_factory(tmp_path, **overrides)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{named}.*FeedTrainer supports one process or DDP"):
        FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16))


def test_parallelism_config_is_refused_by_name():
    with pytest.raises(ValueError, match="parallelism_config: FeedTrainer supports one process or DDP"):
        check_distributed_backend(SimpleNamespace(fsdp=None, deepspeed=None, parallelism_config=object()))


# TrainingArguments and Trainer arguments refused or adapted (docs/trainer_contract.md)


@pytest.mark.parametrize(
    "option",
    [
        {"gradient_checkpointing": True},
        {"activation_checkpointing": True},
        {"neftune_noise_alpha": 5.0},
        {"use_liger_kernel": True},
    ],
)
def test_options_a_feed_run_cannot_honour_are_refused_by_name(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory, option
):
    (name,) = option
    args = feed_config_factory(tmp_path, **option)
    with pytest.raises(ValueError, match=f"{name}(| / gradient_checkpointing)=.* is not supported by FeedTrainer: "):
        FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16))


def test_compute_loss_func_is_refused_by_name(tmp_path, tiny_teachers, synthetic_images, feed_config_factory):
    with pytest.raises(ValueError, match="compute_loss_func is not supported by FeedTrainer.*override compute_loss"):
        FeedTrainer(
            teachers=tiny_teachers,
            args=feed_config_factory(tmp_path),
            train_dataset=synthetic_images(16),
            compute_loss_func=lambda outputs, labels, num_items_in_batch=None: outputs.logits.sum(),
        )


def test_label_smoothing_smooths_the_training_and_the_evaluation_loss_as_in_transformers(
    tmp_path, synthetic_images, feed_config_factory
):
    args = feed_config_factory(tmp_path, label_smoothing_factor=0.1, max_steps=1)
    trainer = FeedTrainer(args=args, train_dataset=synthetic_images(16), eval_dataset=synthetic_images(16, seed=1))
    trainer.train()
    metrics = trainer.evaluate()
    data = synthetic_images(16, seed=1)
    with torch.no_grad():
        logits = trainer.model.eval()(data.pixels).logits
    expected = F.cross_entropy(logits, data.labels, label_smoothing=0.1)
    assert metrics["eval_loss"] == pytest.approx(float(expected), rel=1e-4)


def test_bf16_full_eval_evaluates_the_student_in_bfloat16(tmp_path, synthetic_images, feed_config_factory):
    args = feed_config_factory(tmp_path, bf16_full_eval=True, max_steps=1)
    trainer = FeedTrainer(args=args, train_dataset=synthetic_images(16), eval_dataset=synthetic_images(16, seed=1))
    trainer.train()
    metrics = trainer.evaluate()  # fp32 pixel_values reach a bfloat16 student: cast as transformers' vision models do
    assert next(trainer.model.parameters()).dtype == torch.bfloat16 and metrics["eval_loss"] > 0


def test_warmup_with_step_decay_is_refused_not_skipped(tmp_path, feed_config_factory):
    with pytest.raises(ValueError, match="warmup_steps=10 would not be applied: lr_decay_epochs"):
        feed_config_factory(
            tmp_path, max_steps=-1, lr_scheduler_type="constant", lr_decay_epochs=[1.0], warmup_steps=10
        )


def test_feed_config_is_needed_and_named(tmp_path):
    from transformers import TrainingArguments

    with pytest.raises(TypeError, match="FeedConfig.*got TrainingArguments \\(a TrainingArguments: FeedConfig takes"):
        FeedTrainer(model=_student(), args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True))
    assert issubclass(FeedConfig, TrainingArguments)


def test_seed_decides_the_student_and_connectors_feed_trainer_builds(
    tmp_path, tiny_teachers, synthetic_images, feed_config_factory
):
    def initial_state(seed):
        args = feed_config_factory(tmp_path / str(seed), seed=seed)
        return _clone(FeedTrainer(teachers=tiny_teachers, args=args, train_dataset=synthetic_images(16)).model)

    first, again, other = initial_state(3), initial_state(3), initial_state(4)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert _changed(first, SimpleNamespace(state_dict=lambda: other), "connectors.0.")
    assert _changed(first, SimpleNamespace(state_dict=lambda: other), "student.conv1")


# docs/trainer_contract.md: every Trainer argument and TrainingArguments field placed, every named test real


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _first_column_names(section: str) -> list[str]:
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`(\w+)`", row.split(" | ")[0])]


def test_the_contract_names_every_trainer_argument_and_training_field():
    text = (ROOT / "docs" / "trainer_contract.md").read_text()
    arguments = [name for name in inspect.signature(Trainer.__init__).parameters if name != "self"]
    listed = _first_column_names(_section(text, "`Trainer.__init__` arguments"))
    missing = sorted(set(arguments) - set(listed))
    assert not missing, f"Trainer.__init__ arguments docs/trainer_contract.md does not place: {missing}"
    assert set(listed) - set(arguments) == {"teachers", "class_names"}  # FeedTrainer's own
    fields = {spec.name for spec in dataclasses.fields(TrainingArguments) if spec.init}
    changed = _first_column_names(_section(text, "`TrainingArguments` fields FEED changes, refuses or decides"))
    unchanged = re.findall(r"`(\w+)`", _section(text, "`TrainingArguments` fields that work as in transformers"))
    unchanged = [name for name in unchanged if name in fields]  # the closing note names some again
    placed = set(changed) | set(unchanged)
    assert not sorted(fields - placed), f"TrainingArguments fields not placed: {sorted(fields - placed)}"
    assert not set(changed) & set(unchanged), "a field is both changed and unchanged"
    assert set(changed) <= fields
    redeclared = {name for name in FeedConfig.__dict__["__annotations__"] if name in fields}  # FEED's own defaults
    refused = {name for names in REFUSED_OPTIONS for name in names}
    assert redeclared | refused <= set(changed), sorted((redeclared | refused) - set(changed))
    for file, test in re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", text):
        assert f"def {test}(" in (ROOT / file).read_text(), f"{file}::{test} does not exist"
