"""Run by test_distributed.py, once as 1 process and once under `accelerate launch` as 2 (gloo, CPU).

Trains a tiny 2-teacher pFEED student on fixed synthetic data with the same global batch and writes, per
rank, what the test compares: the logged curve, this rank's own loss terms, what DDP wrapped, and every
file this rank opened for writing under the output folder. Argument 4 = "frozen-batchnorm" makes BatchNorm
normalise with running statistics, removing the one legitimate per-rank difference.
"""

import json
import sys
from pathlib import Path

import safetensors.torch
import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SyntheticImages, make_feed_config  # noqa: E402

from feed_hf import FeedTrainer  # noqa: E402


class RecordingTrainer(FeedTrainer):
    """Keeps this rank's per-step loss terms (before the cross-rank average that `log` reports)."""

    local_terms: list[dict[str, float]] = []
    local_labels: list[list[int]] = []

    def compute_loss(self, model, inputs, *args, **kwargs):
        if model.training:
            self.local_labels.append(inputs["labels"].tolist())
        return super().compute_loss(model, inputs, *args, **kwargs)

    def _accumulate_loss_terms(self, terms):
        self.local_terms.append({name: float(value) for name, value in terms.items()})
        super()._accumulate_loss_terms(terms)


def freeze_batchnorm_statistics(model: torch.nn.Module) -> None:
    """BatchNorm normalises with its running statistics even in training: the only per-rank difference goes."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
            module.train = lambda mode=True, module=module: module  # model.train() must not switch it back


def main(output_dir: str, per_device_batch: int, report_dir: str, frozen_batchnorm: bool) -> None:
    writes: list[str] = []

    def record_writes(event: str, args: tuple) -> None:
        # Audit events see every Python-level write: open() in a write mode, mkdir, rename/replace, remove.
        if event == "open" and isinstance(args[0], str) and args[0].startswith(output_dir):
            if args[1] is not None and any(flag in args[1] for flag in "wax+"):
                writes.append(args[0])
        elif event in ("os.mkdir", "os.rename", "os.remove") and str(args[0]).startswith(output_dir):
            writes.append(f"{event} {args[0]}")

    sys.addaudithook(record_writes)
    teachers = []
    for seed in (11, 12):
        torch.manual_seed(seed)
        teachers.append(timm.create_model("resnet8_cifar", num_classes=5))
    args = make_feed_config(
        output_dir,
        per_device_train_batch_size=per_device_batch,
        max_steps=6,
        learning_rate=0.005,
        logging_steps=1,
        ddp_find_unused_parameters=False,
        use_cpu=False,
        save_strategy="steps",
        save_steps=6,
    )
    trainer = RecordingTrainer(teachers=teachers, args=args, train_dataset=SyntheticImages(192, seed=5))
    if frozen_batchnorm:
        freeze_batchnorm_statistics(trainer.model)
    if args.process_index == 0:  # where training started: the test scales its tolerance by how far it moved
        initial = {k: v.detach().clone().contiguous() for k, v in trainer.model.state_dict().items()}
        safetensors.torch.save_file(initial, str(Path(report_dir) / "initial.safetensors"))
    trainer.train()
    trainer.save_model(f"{output_dir}/export")
    report = {
        "rank": args.process_index,
        "world_size": args.world_size,
        "wrapped": type(trainer.model_wrapped).__name__,
        "teacher_types": sorted({type(m).__name__ for m in trainer.teachers.modules()}),
        "teachers_have_grad": any(p.requires_grad for p in trainer.teachers.parameters()),
        "logged": [e for e in trainer.state.log_history if "loss/ce" in e],
        "local_terms": trainer.local_terms,
        "local_labels": trainer.local_labels,
        "writes": writes,
    }
    Path(report_dir, f"rank{args.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "frozen-batchnorm")
