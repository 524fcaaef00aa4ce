"""`feed-hf` console script: each subcommand parses its dataclasses and calls one library job."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .arguments import parse_arguments

__all__ = ["main", "parse_arguments", "report_user_errors", "run_command"]


@dataclass(frozen=True)
class _Command:
    run: Callable[[list[str]], Any]
    summary: str
    example: str


def _teachers(argv: list[str]) -> Any:
    from .config import FeedConfig
    from .data import DataArguments
    from .jobs import TeacherArguments, train_teachers

    data_args, args, teacher_args = parse_arguments(
        (DataArguments, FeedConfig, TeacherArguments), argv, *_help("teachers")
    )
    return train_teachers(data_args, args, teacher_args.teacher_seeds)


def _parallel(argv: list[str]) -> Any:
    from .config import FeedConfig
    from .data import DataArguments
    from .jobs import train_model

    data_args, args = parse_arguments((DataArguments, FeedConfig), argv, *_help("parallel"))
    return train_model(data_args, args)


def _sequential(argv: list[str]) -> Any:
    from .config import FeedConfig
    from .data import DataArguments
    from .sequential import SequentialArguments, run_sequential

    data_args, args, seq_args = parse_arguments(
        (DataArguments, FeedConfig, SequentialArguments), argv, *_help("sequential")
    )
    return run_sequential(data_args, args, seq_args.num_generations)


def _baselines(argv: list[str]) -> Any:
    from .config import FeedConfig
    from .data import DataArguments
    from .jobs import BaselineArguments, baseline_config, train_model

    data_args, args, baseline_args = parse_arguments(
        (DataArguments, FeedConfig, BaselineArguments), argv, *_help("baselines")
    )
    config = baseline_config(args, baseline_args.baseline, baseline_args.teacher_index)
    return train_model(data_args, config, task=f"baseline_{baseline_args.baseline}")


def _analyze(argv: list[str]) -> Any:
    from .analysis import AnalysisArguments, run_analysis

    (analysis_args,) = parse_arguments((AnalysisArguments,), argv, *_help("analyze"))
    report = run_analysis(analysis_args)
    print(f"reconstruction errors written to {report['plot']} and reconstruction.json beside it")
    return report


def _card(argv: list[str]) -> Any:
    from .model_card import CardArguments, write_model_card_from_results

    (card_args,) = parse_arguments((CardArguments,), argv, *_help("card"))
    path = write_model_card_from_results(card_args)
    print(f"model card written to {path}")
    return path


def _push(argv: list[str]) -> Any:
    from .hub import PushArguments, push_export

    (push_args,) = parse_arguments((PushArguments,), argv, *_help("push"))
    commit = push_export(
        push_args.export_dir,
        push_args.repo_id,
        private=push_args.private,
        revision=push_args.revision,
        push_connectors=push_args.push_connectors,
        commit_message=push_args.commit_message,
    )
    print(f"pushed {push_args.export_dir} to {commit.repo_url} ({commit.oid})")
    return commit


def _demo(argv: list[str]) -> Any:
    from .demo import main as demo_main

    return demo_main(argv)


COMMANDS: dict[str, _Command] = {
    "demo": _Command(
        _demo,
        "Offline end-to-end run: 2 teachers, a CE baseline, a pFEED student, accuracy table.",
        "feed-hf demo --output_dir runs/demo",
    ),
    "teachers": _Command(
        _teachers,
        "Train N same-architecture teachers (CE, one per seed), each exported.",
        "feed-hf teachers --student resnet56_cifar --teacher_seeds 1 2 3 --output_dir runs/t",
    ),
    "parallel": _Command(
        _parallel,
        "Parallel FEED: one student, several frozen teachers.",
        "feed-hf parallel recipes/configs/cifar100_resnet56x3_to_resnet20.yaml",
    ),
    "sequential": _Command(
        _sequential,
        "Sequential FEED: generations, each taught by the one before; resumable.",
        "feed-hf sequential --student resnet20_cifar --num_generations 3 --output_dir runs/s",
    ),
    "baselines": _Command(
        _baselines,
        "Baselines: CE only, logit KD from the teacher ensemble, single-teacher FEED.",
        "feed-hf baselines --baseline kd --kd_weight 1 --teachers runs/t/teacher_0 ...",
    ),
    "analyze": _Command(
        _analyze,
        "Reconstruction error of each teacher's map (train vs test; held-out teachers).",
        "feed-hf analyze --run_dir runs/pfeed --heldout_teachers runs/t/teacher_2",
    ),
    "push": _Command(
        _push,
        "Push an exported folder to the Hub (timm model, FEED config, card; no connectors).",
        "feed-hf push --export_dir runs/pfeed --repo_id you/resnet20-feed",
    ),
    "card": _Command(
        _card,
        "Render README.md (model card) of an exported folder from its results.json.",
        "feed-hf card --export_dir runs/pfeed --repo_id you/resnet20-feed",
    ),
}


def _help(name: str) -> tuple[str, str]:
    command = COMMANDS[name]
    return f"feed-hf {name}", f"{command.summary} Example: {command.example}. A YAML/JSON config may come first."


# Errors whose message already says what to do: shown without a traceback (FEED_HF_DEBUG=1 shows it).
_USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, FloatingPointError, ConnectionError, RuntimeError)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (returns nothing: a return value would become the exit status)."""
    report_user_errors(run_command, argv)


def report_user_errors(entry_point: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> Any:
    """Run `entry_point(argv)`; a user error is one `feed-hf: error: ...` line and exit status 2 (CLI and recipes)."""
    try:
        return entry_point(argv)
    except _USER_ERRORS as error:
        if os.environ.get("FEED_HF_DEBUG"):
            raise
        print(f"feed-hf: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def run_command(argv: list[str] | None = None) -> Any:
    """Parse `argv` (`COMMAND [options]`) and run it; returns the job's result (for in-process use and tests)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="feed-hf",
        description="FEED knowledge distillation (Park & Kwak 2019) with timm models and the transformers Trainer.",
        epilog="Run `feed-hf COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        subparsers.add_parser(name, help=f"{command.summary} e.g. `{command.example}`", add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return None
    if argv[0] not in COMMANDS:
        parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
    return COMMANDS[argv[0]].run(argv[1:])


if __name__ == "__main__":
    main()
