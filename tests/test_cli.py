"""The command line: grouped and cached `--help`, `--version`, `teachers --model`, `parallel` needs teachers,
and `report_to=tensorboard` receiving the per-teacher FEED losses."""

import json
import logging
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import timm
import torch
from recipe_helpers import load_recipe, tiny_argv
from timm.models import save_for_hf

import feed_hf_cli
from feed_hf.runs.arguments import DATA_GROUP, FEED_GROUP, TRAINER_GROUP
from feed_hf.runs.jobs import teacher_architecture
from feed_hf_cli import COMMANDS, command_help, main, run_command

ROOT = Path(__file__).resolve().parent.parent
TRAINING_COMMANDS = ("parallel", "teachers", "sequential", "baselines", "experiment")


def _without_student(argv: list[str]) -> list[str]:
    at = argv.index("--student")
    return argv[:at] + argv[at + 2 :]


@pytest.mark.parametrize("name", TRAINING_COMMANDS)
def test_help_shows_feed_and_data_options_before_the_trainer_options(name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    text = command_help(name)
    feed, data, trainer = (text.index(f"\n{heading}:\n") for heading in (FEED_GROUP, DATA_GROUP, TRAINER_GROUP))
    assert feed < data < trainer
    assert "--feed_beta" in text[feed:data] and "--teachers" in text[feed:data]
    assert "--dataset" in text[data:trainer]
    assert "--learning_rate" in text[trainer:] and "--learning_rate" not in text[:trainer]
    assert text.startswith(f"usage: feed-hf {name} [CONFIG.yaml|CONFIG.json] [--option value ...]\n")


def _help_in_a_fresh_process(name: str, cache: Path) -> tuple[str, bool]:
    """`feed-hf NAME --help` in a new interpreter: its text, and whether transformers got imported."""
    code = (
        "import sys\nfrom feed_hf_cli import main\n"
        f"main([{name!r}, '--help'])\nprint('transformers imported:', 'transformers' in sys.modules)"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), COLUMNS="120")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    text, _, last = done.stdout.rstrip("\n").rpartition("\n")
    return text + "\n", last.endswith("True")


def test_first_help_is_the_parsers_help_and_skips_the_training_stack(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    expected = command_help("baselines")  # the real parser
    first, first_imported = _help_in_a_fresh_process("baselines", tmp_path)
    second, second_imported = _help_in_a_fresh_process("baselines", tmp_path)
    assert first == second == expected
    assert not first_imported and not second_imported  # the shipped help data answered, the first time too
    assert not (tmp_path / "feed-hf").exists()  # and nothing had to be built or cached


def test_with_another_transformers_the_help_is_built_by_the_parser_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    spec = json.loads(feed_hf_cli.help_spec_path().read_text())
    other = tmp_path / "cli_help.json"
    other.write_text(json.dumps({**spec, "transformers": "0.0.1"}))
    monkeypatch.setattr(feed_hf_cli, "help_spec_path", lambda: other)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert feed_hf_cli.shipped_help("baselines") is None  # not valid for this transformers
    assert feed_hf_cli.command_help_text("baselines") == command_help("baselines")
    assert len(list((tmp_path / "cache" / "feed-hf" / "help").glob("baselines-*.txt"))) == 1


@pytest.mark.parametrize("columns", ["80", "150"])
def test_shipped_help_data_matches_every_real_parser(monkeypatch, columns):
    from feed_hf.runs.help_spec import build_help_spec

    shipped = json.loads(feed_hf_cli.help_spec_path().read_text())
    assert shipped == json.loads(json.dumps(build_help_spec())), (
        "feed_hf/cli_help.json is out of date: run `python -m feed_hf.runs.help_spec` and commit it"
    )
    monkeypatch.setenv("COLUMNS", columns)
    for name in COMMANDS:
        assert feed_hf_cli.shipped_help(name) == command_help(name), name


def test_a_recipes_help_is_the_commands_and_imports_no_torch(tmp_path):
    code = (
        "import runpy, sys\n"
        "sys.argv = ['feed_parallel.py', '--help']\n"
        f"runpy.run_path({str(ROOT / 'recipes' / 'feed_parallel.py')!r}, run_name='__main__')\n"
        "print('heavy:', sorted(m for m in ('torch', 'transformers', 'feed_hf') if m in sys.modules))"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), COLUMNS="120")
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True, cwd=ROOT)
    text, _, last = done.stdout.rstrip("\n").rpartition("\n")
    assert last == "heavy: []"
    os.environ["COLUMNS"] = "120"
    try:
        assert text + "\n" == command_help("parallel")
    finally:
        del os.environ["COLUMNS"]


def test_help_with_a_config_file_shows_its_values_and_is_not_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = tmp_path / "c.yaml"
    config.write_text("feed_p: 3\n")
    with pytest.raises(SystemExit):
        main(["parallel", str(config), "--help"])
    assert "(default: 3)" in capsys.readouterr().out
    assert not (tmp_path / "cache").exists()


def test_version_names_feed_hf_and_the_training_stack(capsys):
    main(["--version"])
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"feed-hf {version('feed-hf')} (")
    for name in ("torch", "timm", "transformers"):  # as pip shows them (torch.__version__ adds '+cu130')
        assert f"{name} {version(name)}," in line
    assert torch.__version__.startswith(version("torch")) and len(line.splitlines()) == 1


def test_every_command_is_in_the_top_level_help(capsys):
    main(["--help"])
    printed = capsys.readouterr().out
    assert all(name in printed for name in COMMANDS) and "--version" in printed


def test_teachers_model_names_the_architecture(tmp_path):
    argv = _without_student(tiny_argv(tmp_path, "--model", "resnet8_cifar", "--teacher_seeds", "1"))
    run_command("teachers", argv)
    assert json.loads((tmp_path / "teacher_0" / "config.json").read_text())["architecture"] == "resnet8_cifar"


def test_teachers_student_option_still_works_with_a_deprecation_note(caplog):
    with caplog.at_level(logging.WARNING, logger="feed_hf.runs.jobs"):
        assert teacher_architecture("resnet8_cifar", None) == "resnet8_cifar"
    assert "--student (config key `student`) is deprecated" in caplog.text and "--model resnet8_cifar" in caplog.text
    assert teacher_architecture(None, "resnet20_cifar") == teacher_architecture("resnet20_cifar", "resnet20_cifar")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model", "resnet20_cifar"],
            "got --model 'resnet20_cifar' and --student 'resnet8_cifar'; .* drop --student",
        ),
        (None, "needs the teachers' architecture: --model NAME"),
    ],
)
def test_teachers_architecture_errors_are_one_line(tmp_path, capsys, extra, message):
    argv = tiny_argv(tmp_path / "t", *extra) if extra else _without_student(tiny_argv(tmp_path / "t"))
    with pytest.raises(SystemExit) as exit_info:
        main(["teachers", *argv])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(error.strip().splitlines()) == 1
    assert re.search(message, error) and not (tmp_path / "t").exists()


def test_parallel_without_teachers_refuses_pointing_to_the_ce_baseline(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["parallel", *tiny_argv(tmp_path / "cli")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(error.strip().splitlines()) == 1
    assert (
        error.startswith("feed-hf: error: feed-hf parallel needs teachers")
        and "`feed-hf baselines --baseline ce`" in error
    )
    with pytest.raises(ValueError, match="needs teachers"):
        load_recipe("feed_parallel").main(tiny_argv(tmp_path / "recipe"))
    assert not (tmp_path / "cli").exists() and not (tmp_path / "recipe").exists()


def _teacher_folder(path: Path, seed: int) -> str:
    torch.manual_seed(seed)
    save_for_hf(timm.create_model("resnet8_cifar", num_classes=10), path, safe_serialization=True)
    return str(path)


def test_report_to_tensorboard_receives_each_teachers_feed_loss_and_the_ce_loss(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    teachers = [_teacher_folder(tmp_path / f"teacher_{seed}", seed) for seed in (1, 2)]
    run_command("parallel", tiny_argv(tmp_path / "run", "--teachers", *teachers, "--report_to", "tensorboard"))
    event_files = list((tmp_path / "run").rglob("events.out.tfevents.*"))
    assert event_files
    tags = set()
    for event_file in event_files:
        accumulator = event_accumulator.EventAccumulator(str(event_file.parent))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    for name in ("feed/loss_t0", "feed/loss_t1", "loss/ce"):
        assert f"train/{name}" in tags, sorted(tags)


def test_fast_answers_import_neither_torch_nor_the_package(tmp_path):
    """`feed-hf --version`, `--help` and a cached `COMMAND --help` stay in the standard library."""
    code = (
        "import sys, feed_hf_cli\n"
        "feed_hf_cli.main(['--version']); feed_hf_cli.main(['--help']); feed_hf_cli.main(['card', '--help'])\n"
        "print('heavy:', sorted(m for m in ('torch', 'timm', 'feed_hf', 'transformers') if m in sys.modules))"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), COLUMNS="120")
    subprocess.run(
        [sys.executable, "-c", "import feed_hf_cli; feed_hf_cli.main(['card', '--help'])"],
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    assert done.stdout.strip().endswith("heavy: []")
