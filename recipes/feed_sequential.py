"""Sequential FEED: generation 1 trains with CE, generation k+1 is taught by generation k (fresh student and connector).

    python recipes/feed_sequential.py recipes/configs/cifar10_cpu_sfeed.yaml
    python recipes/feed_sequential.py recipes/configs/cifar100_sfeed_resnet56.yaml --num_generations 5

Generation k is exported to OUTPUT_DIR/generation_k; OUTPUT_DIR/summary.md and summary.json hold the
accuracy per generation. Rerunning skips generations that already have a results.json.
"""

from feed_hf import FeedConfig
from feed_hf.arguments import parse_arguments
from feed_hf.cli import report_user_errors
from feed_hf.data import DataArguments
from feed_hf.sequential import SequentialArguments, run_sequential


def main(argv: list[str] | None = None) -> list[dict]:
    data_args, args, sequential_args = parse_arguments((DataArguments, FeedConfig, SequentialArguments), argv)
    return run_sequential(data_args, args, sequential_args.num_generations)


if __name__ == "__main__":
    report_user_errors(main)  # a config error is one line, as from `feed-hf`
