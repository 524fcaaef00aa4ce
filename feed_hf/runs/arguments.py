"""Argument dataclasses from `[CONFIG.yaml|CONFIG.json] [--field value ...]`, every value checked on entry.

The config file comes first, or anywhere as `--config FILE`; a field's `aliases` (`--model_name_or_path` for
`--student`) work on the command line and as keys of the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, get_type_hints

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..training.config.field_types import check_field_value, field_specs

__all__ = ["CONFIG_SUFFIXES", "OPTION_GROUPS", "build_parser", "parse_arguments", "read_config_file"]

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")

# `--help` headings in the order they are shown: what the command is about first, the ~200 inherited
# TrainingArguments options (many only for language models) last.
FEED_GROUP = "FEED options (FeedConfig)"
DATA_GROUP = "data options (DataArguments)"
TRAINER_GROUP = "Trainer options (inherited from transformers.TrainingArguments)"
OPTION_GROUPS = (FEED_GROUP, DATA_GROUP, TRAINER_GROUP)
_USAGE = "%(prog)s [CONFIG.yaml|CONFIG.json] [--option value ...]"


class _ArgumentParser(HfArgumentParser):
    """HfArgumentParser with one `--help` heading per kind of option; command-line errors are one ValueError line."""

    def __init__(self, dataclass_types: Sequence[type], **kwargs: Any) -> None:
        self._groups: dict[str, argparse._ArgumentGroup] = {}
        kwargs.setdefault("usage", _USAGE)  # the default usage line lists every option: 300 lines
        super().__init__(dataclass_types, **kwargs)
        self.add_argument(  # read by parse_arguments before argparse sees the options; here for --help
            "--config",
            metavar="FILE",
            default=argparse.SUPPRESS,
            help="A YAML or JSON config file, the same as giving it first; options on the command line win over it.",
        )
        rank = {title: index for index, title in enumerate(OPTION_GROUPS)}
        # argparse shows groups in creation order; a command's own options (e.g. --baseline) lead.
        self._action_groups.sort(key=lambda group: rank.get(group.title, -1) if group in self._groups.values() else -2)

    def error(self, message: str) -> NoReturn:
        raise ValueError(f"{message} (`{self.prog} --help` lists the options)")

    def _add_dataclass_arguments(self, dtype: type) -> None:
        type_hints = get_type_hints(dtype)
        inherited = _trainer_field_names(dtype)
        for field in dataclasses.fields(dtype):
            if field.init:
                field.type = type_hints[field.name]
                self._parse_dataclass_field(self._group(_group_title(dtype, field.name in inherited)), field)

    def _group(self, title: str) -> argparse._ArgumentGroup:
        if title not in self._groups:
            self._groups[title] = self.add_argument_group(title)
        return self._groups[title]


def _trainer_field_names(dtype: type) -> set[str]:
    if not (isinstance(dtype, type) and issubclass(dtype, TrainingArguments)):
        return set()
    return {field.name for field in dataclasses.fields(TrainingArguments)}


def _group_title(dtype: type, inherited: bool) -> str:
    if inherited:
        return TRAINER_GROUP
    if isinstance(dtype, type) and issubclass(dtype, TrainingArguments):
        return FEED_GROUP
    return DATA_GROUP if dtype.__name__ == "DataArguments" else f"command options ({dtype.__name__})"


def build_parser(dataclass_types: Sequence[type], prog: str | None = None, description: str = "") -> HfArgumentParser:
    """The parser of `dataclass_types`, its `--help` grouped: command, FEED, data, then the Trainer's options."""
    return _ArgumentParser(dataclass_types, prog=prog, description=description)


def parse_arguments(
    dataclass_types: Sequence[type], argv: Sequence[str] | None = None, prog: str | None = None, description: str = ""
) -> tuple[Any, ...]:
    """Dataclasses from `[CONFIG.yaml|CONFIG.json] [--field value ...]`; command-line values win over the file.

    Every value in the file is checked against its field's declared type and converted exactly as the same text
    would be on the command line (`feed_beta: 500` is `[500.0]`; `max_steps: 2.7` is an error naming the file and
    the field). Unknown keys in the file are an error that names them (a typo must not silently use a default).
    """
    config_path, argv = _config_file(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser(dataclass_types, prog=prog, description=description)
    if config_path is not None:
        values = _checked_values(config_path, read_config_file(config_path), dataclass_types)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
        # Checked values go in as defaults: argparse does not convert non-text defaults again.
        parser.set_defaults(**values)
    return tuple(parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False))


def _config_file(argv: list[str]) -> tuple[str | None, list[str]]:
    """The config file (first argument, or `--config FILE` / `--config=FILE` anywhere) and the other arguments."""
    given = []
    rest = []
    words = iter(argv)
    for index, word in enumerate(words):
        if index == 0 and word.endswith(CONFIG_SUFFIXES):
            given.append(word)
        elif word == "--config":
            given.append(next(words, None))
            if given[-1] is None or given[-1].startswith("--"):
                raise ValueError("--config needs a file: --config CONFIG.yaml")
        elif word.startswith("--config="):
            given.append(word.removeprefix("--config="))
        else:
            rest.append(word)
    if len(given) > 1:
        raise ValueError(f"config files {given}: give one, either first or with --config")
    return (given[0] if given else None), rest


def read_config_file(path: str) -> dict[str, Any]:
    """The `option: value` mapping of a YAML or JSON file (JSON is YAML); one-line errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path!r} does not exist") from None
    except UnicodeDecodeError:
        raise ValueError(f"config file {path!r} is not UTF-8 text; give a YAML or JSON file") from None
    try:
        values = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        raise ValueError(_syntax_error(path, error)) from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML/JSON ({' '.join(str(error).split())})") from None
    if values is None:  # an empty file: nothing to set
        return {}
    if not isinstance(values, dict):
        kind = "a list" if isinstance(values, list) else f"the single value {values!r}"
        raise ValueError(
            f"{path} must be a mapping of option: value, one per line (e.g. `student: resnet20_cifar`), "
            f"but it holds {kind}"
        )
    return values


def _syntax_error(path: str, error: yaml.MarkedYAMLError) -> str:
    """`FILE:LINE:COLUMN: not valid YAML/JSON (problem, where the construct began)` (1-based, as editors count)."""
    mark = error.problem_mark or error.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
    problem = error.problem or error.context or "invalid syntax"
    if error.context and error.context_mark and error.problem_mark:
        began = error.context_mark
        problem += f"; {error.context} at line {began.line + 1}, column {began.column + 1}"
    return f"{where}: not valid YAML/JSON ({problem}); fix the file there"


def _checked_values(path: str, values: dict[Any, Any], dataclass_types: Sequence[type]) -> dict[str, Any]:
    specs: dict[str, tuple[Any, Any]] = {}
    for dataclass_type in dataclass_types:
        specs.update(field_specs(dataclass_type))
    values = _resolve_aliases(path, values, dataclass_types)
    unknown = sorted(str(key) for key in values if key not in specs)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; `--help` lists the options")
    checked = {}
    for name, value in values.items():
        annotation, default = specs[name]
        checked[name] = check_field_value(name, annotation, value, default=default, where=f"{path}: ")
    return checked


def _resolve_aliases(path: str, values: dict[Any, Any], dataclass_types: Sequence[type]) -> dict[Any, Any]:
    """Keys that are a field's alias (`model_name_or_path: x` is `student: x`) under the field's own name."""
    aliases = {}
    for dataclass_type in dataclass_types:
        for spec in dataclasses.fields(dataclass_type):
            for alias in spec.metadata.get("aliases", []):
                aliases[alias.lstrip("-").replace("-", "_")] = spec.name
    resolved = dict(values)
    for key in [key for key in values if key in aliases]:
        name = aliases[key]
        if name in values:
            raise ValueError(f"{path}: {key} and {name} are the same option; keep one")
        resolved[name] = resolved.pop(key)
    return resolved
