"""The `feed-hf` console script, outside the `feed_hf` package so that its fast answers stay fast.

`import feed_hf` imports torch and timm (it registers the CIFAR models with timm), which takes seconds on a small
CPU. `feed-hf --help`, `feed-hf --version` and `feed-hf COMMAND --help` (also `python recipes/NAME.py --help`) are
answered here with the standard library alone; everything else goes to `feed_hf.runs.commands`, the one command
table's runner. The table itself (what each command runs, with which argument dataclasses) is plain data and lives
here too.

A command's `--help` comes from `feed_hf/cli_help.json`, every option of every command as data, made from the real
parsers (`python -m feed_hf.runs.help_spec`; a test checks it matches them) and shipped with the package: argparse
rebuilds the parser from it and lays the text out for the terminal, the first time as fast as the next. With
another transformers version than the file's, the text is built by the real parser (which imports transformers'
TrainingArguments) and cached under `$XDG_CACHE_HOME/feed-hf/help/`, keyed by every feed-hf source file,
transformers, Python and the terminal width.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "COMMANDS",
    "Command",
    "cached_help",
    "help_cache_dir",
    "help_spec_path",
    "command_help",
    "main",
    "run_command",
    "run_recipe",
    "shipped_help",
    "version_line",
]

_VERSIONED = ("feed-hf", "torch", "timm", "transformers")
# feed_hf/, found without importing it (its __init__ imports torch and timm to register the models)
_PACKAGE = Path(importlib.util.find_spec("feed_hf").submodule_search_locations[0])
HELP_SPEC_FORMAT = 1  # the layout of cli_help.json (feed_hf.runs.help_spec writes it)


_DATA, _FEED = "feed_hf.data.loading:DataArguments", "feed_hf.training.config.feed_config:FeedConfig"


@dataclass(frozen=True)
class Command:
    function: str  # "module:function", called with the parsed dataclasses in `arguments` order
    arguments: tuple[str, ...]  # "module:Dataclass" each
    summary: str
    example: str

    def resolve(self) -> tuple[Callable[..., Any], tuple[type, ...]]:
        return _import(self.function), self.dataclass_types()

    def dataclass_types(self) -> tuple[type, ...]:
        return tuple(_import(name) for name in self.arguments)

    def description(self) -> str:
        return f"{self.summary} Example: {self.example}. A YAML/JSON config may come first."


COMMANDS: dict[str, Command] = {
    "demo": Command(
        "feed_hf.runs.demo:run_demo",
        ("feed_hf.runs.demo:DemoArguments",),
        "Offline end-to-end run: 2 teachers, a CE baseline, a pFEED student, accuracy table.",
        "feed-hf demo --output_dir runs/demo",
    ),
    "teachers": Command(
        "feed_hf.runs.jobs:run_teachers",
        (_DATA, _FEED, "feed_hf.runs.jobs:TeacherArguments"),
        "Train N same-architecture teachers (CE, one per seed), each exported.",
        "feed-hf teachers --model resnet56_cifar --teacher_seeds 1 2 3 --output_dir runs/t",
    ),
    "parallel": Command(
        "feed_hf.runs.jobs:run_parallel",
        (_DATA, _FEED),
        "Parallel FEED: one student, several frozen teachers (`--teachers`; without: `baselines --baseline ce`).",
        "feed-hf parallel recipes/configs/cifar100_pfeed_resnet56x3_to_resnet20.yaml",
    ),
    "sequential": Command(
        "feed_hf.runs.jobs:run_sequential_generations",
        (_DATA, _FEED, "feed_hf.training.sequential:SequentialArguments"),
        "Sequential FEED: generations, each taught by the one before; resumable.",
        "feed-hf sequential --student resnet20_cifar --num_generations 3 --output_dir runs/s",
    ),
    "baselines": Command(
        "feed_hf.runs.jobs:run_baseline",
        (_DATA, _FEED, "feed_hf.runs.jobs:BaselineArguments"),
        "Baselines: CE only, logit KD from the teacher ensemble, single-teacher FEED.",
        "feed-hf baselines --baseline kd --kd_weight 1 --teachers runs/t/teacher_0 ...",
    ),
    "experiment": Command(
        "feed_hf.runs.experiment:run_experiment",
        (_DATA, _FEED, "feed_hf.runs.experiment:ExperimentArguments"),
        "The evidence grid: teachers, baselines, pFEED, sFEED, β sweep, seeds, report.",
        "feed-hf experiment recipes/configs/cifar10_cpu_experiment.yaml",
    ),
    "analyze": Command(
        "feed_hf.runs.commands:analyze",
        ("feed_hf.runs.analysis:AnalysisArguments",),
        "Reconstruction error of each teacher's map (train vs test; held-out teachers).",
        "feed-hf analyze --run_dir runs/pfeed --heldout_teachers runs/t/teacher_2",
    ),
    "push": Command(
        "feed_hf.runs.commands:push",
        ("feed_hf.publishing.hub:PushArguments",),
        "Push an exported folder to the Hub (timm model, FEED config, card; no connectors).",
        "feed-hf push --export_dir runs/pfeed --repo_id you/resnet20-feed",
    ),
    "card": Command(
        "feed_hf.runs.commands:card",
        ("feed_hf.publishing.card.render:CardArguments",),
        "Render README.md (model card) of an exported folder from its results.json.",
        "feed-hf card --export_dir runs/pfeed --repo_id you/resnet20-feed",
    ),
    "evaluate": Command(
        "feed_hf.runs.commands:evaluate",
        (_DATA, "feed_hf.runs.evaluation:EvaluateArguments"),
        "Top-1/top-5 of an exported folder or a Hub model (hf-hub:ns/name[@rev]) on a dataset split.",
        "feed-hf evaluate --model hf-hub:you/resnet20-feed --dataset uoft-cs/cifar10 --split test",
    ),
    "store push": Command(
        "feed_hf.runs.store_commands:store_push",
        ("feed_hf.runs.store_commands:StorePushArguments",),
        "Push teacher store parts (one per teacher, verified) and a dataset card to a Hub dataset repo.",
        "feed-hf store push --repo_id you/cifar10-teacher-store --teacher_store_dir stores",
    ),
    "store pull": Command(
        "feed_hf.runs.store_commands:store_pull",
        ("feed_hf.runs.store_commands:StorePullArguments",),
        "Pull a Hub teacher store's parts into the local store folder, each verified before it is used.",
        "feed-hf store pull --repo_id you/cifar10-teacher-store@main --teacher_store_dir stores",
    ),
    "store info": Command(
        "feed_hf.runs.store_commands:store_info",
        ("feed_hf.runs.store_commands:StoreInfoArguments",),
        "What a teacher store holds, part by part: teacher (weights digest), map, images, views, storage, size.",
        "feed-hf store info --repo_id you/cifar10-teacher-store",
    ),
    "env": Command(
        "feed_hf.runs.commands:env",
        (),
        "What a bug report needs: versions, platform, CPU/GPU, accelerate config, Hugging Face settings.",
        "feed-hf env",
    ),
}


def main(argv: list[str] | None = None) -> None:
    """The `feed-hf` console script (returns nothing: a return value would become the exit status)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        _top_level_parser().print_help()
        return
    if argv[0] in ("-V", "--version"):
        print(version_line())
        return
    if argv[0] == "store" and len(argv) > 1 and not argv[1].startswith("-"):  # `feed-hf store push ...`
        argv = [f"store {argv[1]}", *argv[2:]]
    if argv[0] not in COMMANDS:
        _top_level_parser().error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
    if argv[1:] in (["-h"], ["--help"]):  # with a config file too, the defaults shown come from it: not shipped
        print(command_help_text(argv[0]), end="")
        return
    _runner().report_user_errors(run_command, argv[0], argv[1:])


def run_command(name: str, argv: list[str] | None = None) -> Any:
    """Parse `argv` into command `name`'s dataclasses and run it; returns the workflow's result."""
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    return _runner().run_command(COMMANDS[name], name, argv)


def command_help(name: str) -> str:
    """The `--help` text of command `name`, exactly as its parser prints it (built by the real parser)."""
    return _runner().command_help(COMMANDS[name], name)


def run_recipe(command: str, argv: list[str] | None = None) -> Any:
    """A recipe's `main`: run `command` on `argv`; its `--help` is answered as `feed-hf COMMAND --help` is."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["-h"], ["--help"]):
        print(command_help_text(command), end="")
        return None
    return run_command(command, argv)


def command_help_text(command: str) -> str:
    """`command`'s `--help` text: from the shipped data, else built by the real parser and cached."""
    return shipped_help(command) or cached_help(command, lambda: command_help(command))


def _runner() -> Any:
    """The runner (`feed_hf/runs/commands.py`): imported when a command runs; it never imports this module back."""
    return importlib.import_module("feed_hf.runs.commands")


def _top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feed-hf",
        description="FEED knowledge distillation (Park & Kwak 2019) with timm models and the transformers Trainer.",
        epilog="Run `feed-hf COMMAND --help` for a command's options; `feed-hf --version` for the versions.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-V", "--version", action="store_true", help="Print the feed-hf, torch, timm and transformers versions."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        subparsers.add_parser(name, help=f"{command.summary} e.g. `{command.example}`", add_help=False)
    return parser


def version_line() -> str:
    """`feed-hf 0.1.0 (torch …, timm …, transformers …, Python …)`, read from the installed packages' metadata."""
    versions = {name: _installed_version(name) for name in _VERSIONED}
    stack = ", ".join(f"{name} {versions[name]}" for name in _VERSIONED[1:])
    return f"feed-hf {versions['feed-hf']} ({stack}, Python {platform.python_version()})"


def help_cache_dir() -> Path:
    """Where help texts are cached: `$XDG_CACHE_HOME/feed-hf/help` (`~/.cache/feed-hf/help` by default)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "feed-hf" / "help"


def cached_help(command: str, build: Callable[[], str]) -> str:
    """`command`'s help text: from the cache when its key matches, else `build()` (then stored for next time)."""
    path = help_cache_dir() / f"{command}-{_cache_key(command)}.txt"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    text = build()
    _store(path, text)
    return text


def help_spec_path() -> Path:
    """`feed_hf/cli_help.json`: every command's options as data (`feed_hf.runs.help_spec` writes it)."""
    return _PACKAGE / "cli_help.json"


def shipped_help(command: str) -> str | None:
    """`command`'s help from `cli_help.json`, laid out by argparse; None when the file is not for this install."""
    try:
        spec = json.loads(help_spec_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if spec.get("format") != HELP_SPEC_FORMAT or spec.get("transformers") != _installed_version("transformers"):
        return None  # TrainingArguments' fields follow transformers: the real parser answers (and is cached)
    parser_spec = spec.get("commands", {}).get(command)
    return None if parser_spec is None else parser_from_spec(parser_spec, spec["actions"]).format_help()


def parser_from_spec(spec: dict[str, Any], actions: list[dict[str, Any]]) -> argparse.ArgumentParser:
    """An argparse parser whose help is the one `spec` was taken from (`feed_hf.runs.help_spec.parser_spec`);
    its groups name their options by position in `actions`."""
    parser = argparse.ArgumentParser(
        prog=spec["prog"],
        usage=spec["usage"],
        description=spec["description"],
        epilog=spec["epilog"],
        formatter_class=getattr(argparse, spec["formatter_class"]),
        add_help=False,
    )
    groups = []
    for group_spec in spec["groups"]:
        known = {group.title: group for group in (parser._positionals, parser._optionals)}
        group = known.get(group_spec["title"]) or parser.add_argument_group(
            group_spec["title"], group_spec["description"]
        )
        for position in group_spec["actions"]:
            group._add_action(_action_from_spec(actions[position]))
        groups.append(group)
    parser._action_groups = groups
    return parser


def _action_from_spec(spec: dict[str, Any]) -> argparse.Action:
    action_class = getattr(argparse, spec["kind"])
    values = {
        **spec,
        "default": argparse.SUPPRESS if spec["default"] == argparse.SUPPRESS else spec["default"],
        "help": argparse.SUPPRESS if spec["help"] == argparse.SUPPRESS else spec["help"],
        "metavar": tuple(spec["metavar"]) if isinstance(spec["metavar"], list) else spec["metavar"],
    }
    accepted = inspect.signature(action_class).parameters
    return action_class(**{name: value for name, value in values.items() if name in accepted})


def _cache_key(command: str) -> str:
    """Changes whenever the help text could: any feed-hf source file, transformers, Python, the terminal width."""
    digest = hashlib.sha256(command.encode())
    for source in sorted(_PACKAGE.rglob("*.py")):
        stat = source.stat()
        digest.update(f"{source.relative_to(_PACKAGE)}:{stat.st_mtime_ns}:{stat.st_size}\n".encode())
    # argparse wraps help at the terminal width (COLUMNS when set), so the width is part of the text.
    digest.update(f"{_installed_version('transformers')}|{platform.python_version()}".encode())
    digest.update(f"|{shutil.get_terminal_size().columns}".encode())
    return digest.hexdigest()[:16]


def _store(path: Path, text: str) -> None:
    # A cache: a read-only or full disk only costs the next `--help` its speed, never its answer.
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def _installed_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _import(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


if __name__ == "__main__":
    main()
