"""One epoch of each paired method of an experiment config, timed: the basis of its grid-time estimate.

    python benchmarks/experiment_epoch_times.py recipes/configs/cifar10_cpu_paired.yaml [--output_json F]

At the config's settings (its training split size, batch, student and teacher architecture, optimiser), trains one
epoch of: a CE run, whose export then stands in for each of the config's teachers (distinct teachers of the same
architecture cost the same), logit KD, FEED from one teacher and pFEED from all of them. Prints each run's
training seconds (the Trainer's train_runtime), evaluation seconds on the test split, and the process CPU seconds
(less sensitive than wall time to other work on a shared machine), then the grid's estimated minutes at the
config's num_train_epochs: teachers + β sweep (pFEED) + the paired seeds × the four methods.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import datasets

from feed_hf.runs.arguments import parse_arguments
from feed_hf.runs.experiment import grid_splits, method_overrides, paired_method_config
from feed_hf.training.train_model import train_model
from feed_hf_cli import COMMANDS


def _timed(data_args, config, splits, task) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    results = train_model(data_args, config, splits, task=task)
    return {
        "train_s": results["train_metrics"]["train_runtime"],
        "eval_s": results["metrics"]["eval_runtime"],
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
    }


def main(argv: list[str]) -> dict:
    output_json = argv[argv.index("--output_json") + 1] if "--output_json" in argv else None
    data_args, base, experiment = parse_arguments(COMMANDS["experiment"].dataclass_types(), argv[:1])
    train, validation, test = grid_splits(data_args, base.seed, experiment.validation_samples)
    splits = datasets.DatasetDict(train=train, eval=test)
    epochs = base.num_train_epochs
    with tempfile.TemporaryDirectory() as root:
        one_epoch = dataclasses.replace(base, num_train_epochs=1, overwrite_output_dir=True)
        teacher = dataclasses.replace(one_epoch, output_dir=f"{root}/teacher", teachers=[], student=experiment.teacher)
        times = {"ce": _timed(data_args, teacher, splits, "teacher")}
        teachers = [teacher.output_dir] * len(experiment.teacher_seeds)
        for name, overrides in method_overrides(teachers, None, experiment.beta_sweep[0]).items():
            if name in ("kd_ensemble", "feed_single", "pfeed_3"):
                config = paired_method_config(one_epoch, overrides, experiment)
                times[name] = _timed(data_args, dataclasses.replace(config, output_dir=f"{root}/{name}"), splits, name)
    validation_share = len(validation) / len(test)
    seconds = (
        len(experiment.teacher_seeds) * (times["ce"]["train_s"] * epochs + times["ce"]["eval_s"])
        + len(experiment.beta_sweep)
        * (times["pfeed_3"]["train_s"] * epochs + times["pfeed_3"]["eval_s"] * validation_share)
        + len(experiment.student_seeds) * sum(t["train_s"] * epochs + t["eval_s"] for t in times.values())
    )
    report = {
        "config": argv[0],
        "num_train": len(train),
        "one_epoch": times,
        "epochs": epochs,
        "estimated_grid_minutes": round(seconds / 60, 1),
    }
    print(json.dumps(report, indent=2))
    if output_json:
        Path(output_json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
