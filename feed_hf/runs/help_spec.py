"""Every command's `--help` as data, shipped with the package so that the first `feed-hf COMMAND --help` is fast.

`feed_hf/cli_help.json` holds, per command, its parser's settings and every option as argparse holds it (flags,
help, the default as shown, metavar, choices, nargs, heading), made from the real parsers by `write_help_spec`;
an option shared by several commands (TrainingArguments', FeedConfig's) is stored once, named by its index.
`feed_hf_cli.shipped_help` rebuilds an argparse parser from it with the standard library alone: argparse then lays
the text out for the running terminal exactly as the real parser would. The file is valid for the transformers
version it records (TrainingArguments' fields are part of every training command); with another version the help
is built by the real parser and cached (`feed_hf_cli.cached_help`).

Regenerate it after changing an argument dataclass (`tests/test_cli.py` fails until it matches):

    python -m feed_hf.runs.help_spec
"""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from feed_hf_cli import COMMANDS, HELP_SPEC_FORMAT, help_spec_path

from .arguments import build_parser

__all__ = ["build_help_spec", "parser_spec", "write_help_spec"]


def parser_spec(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """What `format_help` reads of `parser`: its settings and each heading's options, in order."""
    return {
        "prog": parser.prog,
        "usage": parser.usage,
        "description": parser.description,
        "epilog": parser.epilog,
        "formatter_class": parser.formatter_class.__name__,
        "groups": [
            {
                "title": group.title,
                "description": group.description,
                "actions": [_action_spec(action) for action in group._group_actions],
            }
            for group in parser._action_groups
        ],
    }


def _action_spec(action: argparse.Action) -> dict[str, Any]:
    return {
        "kind": type(action).__name__,
        "option_strings": list(action.option_strings),
        "dest": action.dest,
        "nargs": action.nargs,
        "default": _shown(action.default),  # help shows `%(default)s`: its text is all that matters
        "choices": None if action.choices is None else [str(choice) for choice in action.choices],
        "required": action.required,
        "help": action.help,
        "metavar": list(action.metavar) if isinstance(action.metavar, tuple) else action.metavar,
    }


def _shown(value: Any) -> str | None:
    return None if value is None else str(value)


def build_help_spec() -> dict[str, Any]:
    """The help data of every command, from the real parsers, with the transformers version it is valid for."""
    actions: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    commands = {}
    for name, command in COMMANDS.items():
        parser = build_parser(command.dataclass_types(), prog=f"feed-hf {name}", description=command.description())
        spec = parser_spec(parser)
        for group in spec["groups"]:  # each option once in `actions`; groups name them by position
            for position, action in enumerate(group["actions"]):
                key = json.dumps(action, sort_keys=True)
                if key not in index:
                    index[key] = len(actions)
                    actions.append(action)
                group["actions"][position] = index[key]
        commands[name] = spec
    transformers = version("transformers")
    return {"format": HELP_SPEC_FORMAT, "transformers": transformers, "actions": actions, "commands": commands}


def write_help_spec(path: Path | None = None) -> Path:
    """Write `build_help_spec()` to `feed_hf/cli_help.json` (or `path`)."""
    path = Path(path) if path is not None else help_spec_path()
    path.write_text(json.dumps(build_help_spec(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(f"written {write_help_spec()}")  # noqa: T201
