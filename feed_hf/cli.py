"""`feed-hf` console script: thin dispatch to the library's entry points."""

from __future__ import annotations

import argparse
import sys


def _demo(argv: list[str]) -> None:
    from .demo import main as demo_main

    demo_main(argv)


COMMANDS = {
    "demo": (
        _demo,
        "Offline end-to-end FEED run: teachers, baseline, pFEED student, table. "
        "Example: feed-hf demo --output_dir runs/demo",
    ),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="feed-hf",
        description="FEED knowledge distillation (Park & Kwak 2019) with timm + transformers.",
        epilog="Run `feed-hf COMMAND --help` for a command's options.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return
    if argv[0] not in COMMANDS:
        parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
    COMMANDS[argv[0]][0](argv[1:])


if __name__ == "__main__":
    main()
