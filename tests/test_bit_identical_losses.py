"""The tiny pFEED+KD run of benchmarks/bit_identical_losses.py logs the losses it logged on main before the
issue-20 moves (tests/expected_losses.json, recorded at ca89d27): a refactor that changes a number fails here."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = json.loads((ROOT / "tests" / "expected_losses.json").read_text())


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "bit_identical_losses", ROOT / "benchmarks" / "bit_identical_losses.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tiny_run_logs_the_recorded_losses(tmp_path):
    benchmark = _benchmark()
    entries = benchmark.logged_losses(str(tmp_path))
    if torch.__version__ == EXPECTED["torch"]:  # the same kernels: every bit
        assert benchmark.first_difference(EXPECTED["entries"], entries) is None
    else:  # another torch may reduce in another order: the same numbers to float32 precision
        assert [sorted(e) for e in entries] == [sorted(e) for e in EXPECTED["entries"]]
        for old, new in zip(EXPECTED["entries"], entries, strict=True):
            for key in old:
                if key != "step":
                    assert new[key][0] == pytest.approx(old[key][0], rel=1e-4), (old["step"], key)


def test_a_changed_bit_is_named():
    benchmark = _benchmark()
    changed = json.loads(json.dumps(EXPECTED["entries"]))
    changed[2]["loss"][1] = float.hex(float.fromhex(changed[2]["loss"][1]) * (1 + 2**-20))
    assert benchmark.first_difference(EXPECTED["entries"], changed).startswith("step 3 loss:")
