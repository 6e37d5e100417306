"""The benchmark scripts still run (on tiny inputs). They print figures; nothing here times them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_evaluate_bench_runs_and_reports_rates():
    out = run_script("bench/evaluate.py", "--n", "300")
    assert "300 tickets" in out and "tickets/s" in out and "clocks/s" in out


@pytest.mark.skipif(importlib.util.find_spec("businesstimedelta") is None, reason="pip install -e '.[bench]' to compare")
def test_calendar_bench_explains_every_disagreement():
    out = run_script("bench/calendar.py", "--n", "400")
    assert "intervals/s" in out and "x faster" in out
    assert "  other:" not in out  # every disagreement has a known kind
