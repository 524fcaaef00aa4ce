"""CIFAR-10 (JPEG copy in ../shared/data) at CPU scale: teachers, CE / KD / FEED / pFEED / sFEED, β sweep, seeds.

    python recipes/cifar10_cpu_experiment.py recipes/configs/cifar10_cpu_experiment.yaml

Writes every run under runs/cifar10_cpu/ and the report to results/cifar10_cpu.md (+ PNG plots). Rerunning
reuses finished runs. The same grid at paper scale on a GPU: recipes/configs/cifar100_experiment_gpu.yaml.
"""

from feed_hf import FeedConfig
from feed_hf.cli import parse_arguments
from feed_hf.data import DataArguments
from feed_hf.experiment import ExperimentArguments, run_experiment


def main(argv: list[str] | None = None) -> dict:
    data_args, args, experiment = parse_arguments((DataArguments, FeedConfig, ExperimentArguments), argv)
    return run_experiment(data_args, args, experiment)


if __name__ == "__main__":
    main()
