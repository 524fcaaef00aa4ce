"""Argument dataclasses from `[CONFIG.yaml|CONFIG.json] [--field value ...]`, every value checked on entry."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml
from transformers import HfArgumentParser

from ..field_types import check_field_value, field_specs

__all__ = ["CONFIG_SUFFIXES", "parse_arguments", "read_config_file"]

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


class _ArgumentParser(HfArgumentParser):
    """HfArgumentParser whose command-line errors are one ValueError line (argparse prints the whole usage)."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(f"{message} (`{self.prog} --help` lists the options)")


def parse_arguments(
    dataclass_types: Sequence[type], argv: Sequence[str] | None = None, prog: str | None = None, description: str = ""
) -> tuple[Any, ...]:
    """Dataclasses from `[CONFIG.yaml|CONFIG.json] [--field value ...]`; command-line values win over the file.

    Every value in the file is checked against its field's declared type and converted exactly as the same text
    would be on the command line (`feed_beta: 500` is `[500.0]`; `max_steps: 2.7` is an error naming the file and
    the field). Unknown keys in the file are an error that names them (a typo must not silently use a default).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _ArgumentParser(dataclass_types, prog=prog, description=description)
    if argv and argv[0].endswith(CONFIG_SUFFIXES):
        config_path, argv = argv[0], argv[1:]
        values = _checked_values(config_path, read_config_file(config_path), dataclass_types)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
        # Checked values go in as defaults: argparse does not convert non-text defaults again.
        parser.set_defaults(**values)
    return tuple(parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False))


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
    unknown = sorted(str(key) for key in values if key not in specs)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; `--help` lists the options")
    checked = {}
    for name, value in values.items():
        annotation, default = specs[name]
        checked[name] = check_field_value(name, annotation, value, default=default, where=f"{path}: ")
    return checked
