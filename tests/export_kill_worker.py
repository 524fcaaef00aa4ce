"""Exports two different students into one folder, alternately, until killed (for the SIGKILL test).

    python export_kill_worker.py OUTPUT_DIR          # re-exports into OUTPUT_DIR
    python export_kill_worker.py OUTPUT_DIR first    # first exports, each into a fresh OUTPUT_DIR/first_<n>

Prints "ready" once the first export is complete. Model "a" has 5 classes, model "b" 7: a config of one beside
the weights of the other cannot load, and feed_config.json names which model it describes.
"""

import sys

import timm
import torch

import feed_hf  # noqa: F401  (registers resnet8_cifar)
from feed_hf.publishing.export import export_student


def reference_models() -> dict[str, torch.nn.Module]:
    models = {}
    for name, num_classes, seed in (("a", 5, 1), ("b", 7, 2)):
        torch.manual_seed(seed)
        models[name] = timm.create_model("resnet8_cifar", num_classes=num_classes).eval()
    return models


def main() -> None:
    output_dir, first_exports = sys.argv[1], sys.argv[2:] == ["first"]
    models = reference_models()
    step = 0
    while True:
        name = "ab"[step % 2]
        folder = f"{output_dir}/first_{step}" if first_exports else output_dir
        export_student(models[name], folder, {"model": name}, connectors=torch.nn.ModuleList())
        if step == 0:
            print("ready", flush=True)
        step += 1


if __name__ == "__main__":
    main()
