"""Runs an entry of the command table (`feed_hf_cli.COMMANDS`, its one owner), and the small commands.

`feed-hf COMMAND [CONFIG.yaml] [--option value ...]` and `python recipes/<script>.py [CONFIG.yaml] [...]` (also under
`accelerate launch`) both come here through `feed_hf_cli.run_command`: `run_command` parses the command's dataclasses
and calls its function, and `report_user_errors` turns an error whose message already says what to do into one
`feed-hf: error: …` line with exit status 2. Functions and dataclasses are named by import path and imported only
when their command runs, so `feed-hf --help` and `feed-hf --version` import no training stack, and
`feed-hf COMMAND --help` is rebuilt from the shipped `feed_hf/cli_help.json` (`help_spec.py`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["analyze", "card", "command_help", "env", "evaluate", "push", "report_user_errors", "run_command"]

# Errors whose message already says what to do: shown without a traceback (FEED_HF_DEBUG=1 shows it).
_USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, FloatingPointError, ConnectionError, RuntimeError)


def run_command(command: Any, name: str, argv: Sequence[str] | None = None) -> Any:
    """Parse `argv` into `command`'s dataclasses and run it; returns the workflow's result.

    `command` is the table's entry (`feed_hf_cli.Command`), handed over by `feed_hf_cli.run_command`: this module
    never imports the table, so the table's module can import this one without a cycle.
    """
    from ..training.config.checks import check_run_flags
    from .arguments import parse_arguments  # transformers' HfArgumentParser: only when a command runs

    parsed = parse_arguments(command.dataclass_types(), argv, prog=f"feed-hf {name}", description=command.description())
    for arguments in parsed:
        if hasattr(arguments, "do_train"):  # a training command: --do_train false / --do_predict true refused here
            check_run_flags(arguments)
    return command.resolve()[0](*parsed)  # the training stack: only once the arguments are good


def command_help(command: Any, name: str) -> str:
    """The `--help` text of `command` (named `name`), exactly as its parser prints it."""
    from .arguments import build_parser

    return build_parser(
        command.dataclass_types(), prog=f"feed-hf {name}", description=command.description()
    ).format_help()


def report_user_errors(entry_point: Callable[..., Any], *args: Any) -> Any:
    """Run `entry_point(*args)`; a user error is one `feed-hf: error: ...` line and exit status 2."""
    try:
        return entry_point(*args)
    except _USER_ERRORS as error:
        if os.environ.get("FEED_HF_DEBUG"):
            raise
        print(f"feed-hf: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def analyze(analysis_args: Any) -> dict[str, Any]:
    """`feed-hf analyze`: reconstruction errors per teacher, written beside the run."""
    from .analysis import run_analysis

    report = run_analysis(analysis_args)
    print(f"reconstruction errors written to {report['plot']} and reconstruction.json beside it")
    return report


def card(card_args: Any) -> Any:
    """`feed-hf card`: (re)render an export's model card from its results.json."""
    from ..publishing.card.render import write_model_card_from_results

    path = write_model_card_from_results(card_args)
    print(f"model card written to {path}")
    return path


def env() -> dict[str, Any]:
    """`feed-hf env`: versions, platform, CPU/GPU, accelerate config and Hugging Face settings, for a bug report."""
    from .environment import environment_report, environment_text

    report = environment_report()
    print(environment_text(report))
    return report


def evaluate(data_args: Any, evaluate_args: Any) -> dict[str, Any]:
    """`feed-hf evaluate`: top-1/top-5 of a model on a split, as a table (and JSON with --output_json)."""
    from .evaluation import run_evaluation

    report = run_evaluation(data_args, evaluate_args)
    rows = [("model", report["model"]), ("dataset", report["dataset"]), ("split", report["split"])]
    rows += [("examples", str(report["num_examples"]))]
    rows += [(name, f"{report[name]:.2f} %") for name in ("top1", "top5") if name in report]
    rows += [(f"{name} top1", f"{report[name]['top1']:.2f} %") for name in ("knn", "linear") if name in report]
    width = max(len(label) for label, _ in rows)
    print("\n".join(f"{label:<{width}}  {value}" for label, value in rows))
    if evaluate_args.output_json:
        print(f"written to {evaluate_args.output_json}")
    return report


def push(push_args: Any) -> Any:
    """`feed-hf push`: one commit of an export's shareable files."""
    from ..publishing.hub import push_export

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
