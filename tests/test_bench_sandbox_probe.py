"""`python -m bench.sandbox_probe` keeps running: the sandbox probe alone, fresh and warm, tiny."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("warm", [False, True])
def test_sandbox_probe_prints_medians_per_concurrency(warm: bool) -> None:
    command = [sys.executable, "-m", "bench.sandbox_probe", "-n", "30", "--latency-ms", "20", "-c", "2,4"]
    command += ["--repeat", "1", "--seconds", "0.5", *(["--warm"] if warm else [])]

    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)

    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    medians = re.findall(r"median of 1, C=(\d+): ([\d.]+) req/s .* sandbox ([\d.]+) ms CPU/request", finished.stdout)
    assert [c for c, _, _ in medians] == ["2", "4"], finished.stdout
    # CPU is read in clock ticks: a tiny probe may well count none, so only the rate must be positive.
    assert all(float(rate) > 0 and float(cpu) >= 0 for _, rate, cpu in medians), finished.stdout
