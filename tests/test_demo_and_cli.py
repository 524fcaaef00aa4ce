import json
import subprocess
import sys

import pytest
import timm
import torch
from recipe_helpers import RECIPES

from feed_hf_cli import COMMANDS, main, run_command


def test_demo_reduced_mode_prints_table_and_exports_a_loadable_student(tmp_path, capsys):
    summary = run_command(
        "demo",
        [
            "--output_dir",
            str(tmp_path),
            "--max_train_samples",
            "96",
            "--max_eval_samples",
            "48",
            "--num_train_epochs",
            "1",
        ],
    )
    printed = capsys.readouterr().out
    for row in ("teacher 0", "teacher 1", "logit ensemble", "CE baseline", "pFEED student"):
        assert row in printed and row in (tmp_path / "demo_results.md").read_text()
    assert set(summary["rows"]) == set(json.loads((tmp_path / "demo_results.json").read_text())["rows"])
    student_dir = tmp_path / "student_pfeed"
    assert (student_dir / "README.md").is_file() and (student_dir / "results.json").is_file()
    model = timm.create_model(f"local-dir:{student_dir}", pretrained=True).eval()
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_console_script_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "feed_hf.cli", "--help"], capture_output=True, text=True, check=True)
    for name, command in COMMANDS.items():
        assert name in result.stdout and command.example.split()[0] == "feed-hf"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help_with_an_example(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_command(name, ["--help"])
    assert exit_info.value.code == 0
    assert "Example" in capsys.readouterr().out


def test_unknown_command_is_explained(capsys):
    with pytest.raises(SystemExit):
        main(["distill"])
    assert "unknown command 'distill'" in capsys.readouterr().err


def test_every_recipe_is_a_shim_over_a_command_of_the_table():
    for recipe in sorted(RECIPES.glob("*.py")):
        source = recipe.read_text()
        named = [name for name in COMMANDS if f'run_recipe("{name}", argv)' in source]
        assert len(named) == 1, f"{recipe.name} does not run exactly one command of the table"
        assert len(source.splitlines()) < 40, f"{recipe.name} holds more than a docstring and a shim"


def test_every_command_resolves_to_a_function_and_dataclasses():
    for command in COMMANDS.values():
        function, dataclass_types = command.resolve()
        assert callable(function) and all(hasattr(t, "__dataclass_fields__") for t in dataclass_types)
