"""Sequential FEED: generation 1 trains with CE, generation k+1 is taught by generation k (fresh student and connector).

    python recipes/feed_sequential.py recipes/configs/cifar10_cpu_small.yaml --num_generations 3 \\
        --output_dir runs/cifar10_cpu_small/sfeed
    python recipes/feed_sequential.py recipes/configs/cifar100_sfeed_resnet56.yaml --num_generations 5

Generation k is exported to OUTPUT_DIR/generation_k; OUTPUT_DIR/summary.md and summary.json hold the
accuracy per generation. Rerunning skips generations that already have a results.json.
Same code as `feed-hf sequential`.
"""

import sys

from feed_hf_cli import main as feed_hf  # --help answered without importing torch
from feed_hf_cli import run_recipe


def main(argv: list[str] | None = None):
    return run_recipe("sequential", argv)


if __name__ == "__main__":
    feed_hf(["sequential", *sys.argv[1:]])  # the same as `feed-hf sequential`: a config error is one line
