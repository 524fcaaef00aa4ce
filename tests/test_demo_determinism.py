"""The demo names what decides its last digits (kernel instruction set, thread count), so two tables can be compared."""

import json
import os
import subprocess
import sys

from feed_hf.runs.demo import _numerics_line


def _numerics_in_subprocess(**env: str) -> dict:
    # The instruction set and the OpenMP thread count are fixed when torch starts: a fresh process per setting.
    code = "import json; from feed_hf.runs.demo import numerics; print(json.dumps(numerics()))"
    output = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_demo_numerics_report_the_kernels_and_threads_torch_runs_with():
    facts = _numerics_in_subprocess(ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1")
    assert facts["cpu_capability"] == "DEFAULT"
    assert facts["num_threads"] == 1
    assert facts["torch"] and facts["hardware"].startswith(("CPU:", "1×", "2×", "4×", "8×"))
    line = _numerics_line(facts)
    assert "1 threads, DEFAULT kernels" in line and "few images" in line
