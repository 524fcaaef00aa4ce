"""The shape of the package: a light import, no import cycle, a core that never reaches into the run workflows,
small modules and functions, and no stale path in the docs, docstrings or help texts."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "feed_hf"
WORKFLOWS = ("feed_hf.runs", "feed_hf.cli", "feed_hf_cli")  # entry points: the command table and its runner


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


CLI_SCRIPT = ROOT / "feed_hf_cli.py"  # the console script, outside the package: part of the import graph too
_BY_NAME = re.compile(r"^(feed_hf[\w.]*):\w+$")  # "module:attribute", imported by name (the command table)


def _imports(path: Path) -> set[str]:
    """feed_hf modules `path` imports anywhere: lazy imports included, `if TYPE_CHECKING:` blocks excluded, and
    imports by name too: `importlib.import_module("feed_hf...")` and "feed_hf.module:attribute" strings."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("feed_hf"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import x`: module x
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("feed_hf"))
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args:
            if isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("feed_hf"):
                found.add(node.args[0].value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _BY_NAME.match(node.value):
            found.add(_BY_NAME.match(node.value).group(1))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in [*PACKAGE.rglob("*.py"), CLI_SCRIPT]}
    graph = {}
    for name, path in modules.items():
        graph[name] = {target for target in _imports(path) if target in modules and target != name}
    return graph


def test_import_feed_hf_registers_models_without_the_training_stack():
    code = (
        "import sys, timm, feed_hf\n"
        "heavy = [m for m in ('transformers', 'accelerate', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert timm.create_model('resnet8_cifar').num_classes == 100\n"
        "assert feed_hf.FeedTrainer.__name__ == 'FeedTrainer' and 'transformers' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_import_graph_sees_the_command_table_and_its_runner():
    graph = _graph()
    assert "feed_hf.runs.commands" in graph["feed_hf_cli"]  # importlib.import_module("feed_hf.runs.commands")
    assert "feed_hf.runs.jobs" in graph["feed_hf_cli"]  # "feed_hf.runs.jobs:run_teachers" in the table
    assert "feed_hf_cli" in graph["feed_hf.cli"]


def test_no_import_cycle_in_the_package_and_the_cli_script():
    graph = _graph()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = path[path.index(target) :] + [target] if target in path else [module, target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_core_never_imports_the_run_workflows():
    for module, targets in _graph().items():
        if module == "feed_hf" or module.startswith(WORKFLOWS):
            continue
        reached = sorted(t for t in targets if t.startswith(WORKFLOWS))
        assert not reached, f"core module {module} imports {reached}"


def test_modules_and_functions_stay_small():
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().splitlines()
        assert len(lines) <= 400, f"{path.relative_to(ROOT)} has {len(lines)} lines"
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{path.relative_to(ROOT)}:{node.lineno} {node.name} is {length} lines"


_PATH = re.compile(r"(?<![\w/.-])((?:recipes|docs|results|benchmarks|model_cards|tests|feed_hf)/[\w./-]*\w)")


_OUTPUT_KEY = re.compile(r"^\s*(output_dir|logging_dir|report_path)\s*:")


def _texts() -> dict[str, str]:
    texts = {str(path.relative_to(ROOT)): path.read_text() for path in [ROOT / "README.md", *ROOT.glob("docs/*.md")]}
    for path in [*PACKAGE.rglob("*.py"), *ROOT.glob("recipes/*.py")]:
        texts[str(path.relative_to(ROOT))] = path.read_text()  # docstrings, help texts and comments
    for path in ROOT.glob("recipes/configs/*.yaml"):  # their comments; where a run writes is not a reference
        lines = path.read_text().splitlines()
        texts[str(path.relative_to(ROOT))] = "\n".join(line for line in lines if not _OUTPUT_KEY.match(line))
    return texts


def test_every_path_named_in_docs_docstrings_and_help_exists():
    missing = []
    for source, text in _texts().items():
        for match in _PATH.finditer(text):
            named = match.group(1).rstrip(".")
            if any(mark in named for mark in ("*", "{", "<")):
                continue  # a pattern, not a path
            if not (ROOT / named).exists():
                missing.append(f"{source}: {named}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


def test_modules_live_in_subpackages_named_after_the_parts():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "cli.py"], f"feed_hf/ holds modules outside its parts: {top}"
    parts = sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))
    expected = ["data", "evaluation", "method", "models", "publishing", "runs", "store", "teachers", "training"]
    assert set(expected) <= set(parts), f"missing parts: {sorted(set(expected) - set(parts))}"


def test_feed_trainer_and_feed_config_inherit_their_transformers_base_only():
    # Composition, not a mixin made to keep a module under 400 lines: the parts a FeedTrainer delegates to are
    # collaborators it holds; FeedConfig's read-outs are functions of training/config/readouts.py.
    code = (
        "from transformers import Trainer, TrainingArguments\n"
        "from feed_hf import FeedConfig, FeedTrainer\n"
        "assert FeedTrainer.__bases__ == (Trainer,), FeedTrainer.__bases__\n"
        "assert FeedConfig.__bases__ == (TrainingArguments,), FeedConfig.__bases__\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_class_in_the_package_is_only_a_mixin():
    mixins = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Mixin"):
                mixins.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not mixins, f"classes made to be mixed into another: {mixins}"
