"""The fault suite's command line: every trial is listed, and a wrong choice is refused
by name before anything starts (no Ray, no venue)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.faults_trials.trials import TRIALS

ROOT = Path(__file__).resolve().parents[2]


def faults(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.faults", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_trial_of_the_issue_is_in_the_suite() -> None:
    assert sorted(TRIALS) == [str(n) for n in range(1, 9)]
    doc = faults("--help")
    assert doc.returncode == 0 and "--quick" in doc.stdout


def test_an_unknown_trial_is_refused_by_name_before_anything_starts() -> None:
    done = faults("--trials", "1,9")
    assert done.returncode == 2
    assert "--trials: unknown ['9']; the trials are 1, 2, 3, 4, 5, 6, 7, 8" in done.stderr
    assert "Traceback" not in done.stderr and "Ray" not in done.stderr


def test_outages_that_are_not_seconds_are_refused() -> None:
    done = faults("--outages", "1,five")
    assert done.returncode == 2 and "--outages: '1,five' is not a list of seconds" in done.stderr
