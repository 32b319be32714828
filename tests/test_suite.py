"""How `make test` runs the suite (tests/conftest.py): on two pytest-xdist workers, a file's tests on one worker
and the three files that share the smoke sweep on one worker, so that session's sweep is computed once; and the
suite still runs without xdist."""

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # starts pytest itself


def pytest_run(*args):
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def test_the_smoke_sweep_files_share_a_worker_and_other_files_keep_theirs():
    files = ["tests/test_outputs.py", "tests/test_sweep_ray.py", "tests/test_sweep.py", "tests/test_stats.py",
             "tests/test_intervals.py", "tests/test_scorers.py"]
    out = pytest_run("-n", "2", "--dist", "loadfile", "-m", "not slow", "-v", *files)
    workers = defaultdict(set)
    for worker, file in re.findall(r"^\[(gw\d)\] .*?PASSED (tests/\w+\.py)::", out, re.M):
        workers[file].add(worker)
    assert set(workers) == set(files)
    assert all(len(w) == 1 for w in workers.values()), dict(workers)
    assert workers["tests/test_outputs.py"] == workers["tests/test_sweep_ray.py"] == workers["tests/test_sweep.py"]


def test_the_suite_runs_without_xdist():
    assert re.search(r"\d+ passed", pytest_run("-p", "no:xdist", "-q", "tests/test_stats.py"))
