"""The sweep over models x tasks with the embedded model (smoke preset): compiled summary, a
failing model recorded while the sweep goes on, and a killed sweep completed by a restart."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY

from helpers.sweep import main

pytestmark = pytest.mark.slow


def test_sweep_trains_benchmarks_compiles_and_records_failures(smoke_sweep):
    books, lines, runs = smoke_sweep["books"], smoke_sweep["lines"], smoke_sweep["runs"]
    status = {(r["study"], r["model"]): r["status"] for r in runs}
    assert status == {
        ("train_math", TINY): "done", ("train_bio", TINY): "done",
        ("benchmark", TINY): "done",
        ("train_math", "org/not-on-this-machine"): "failed", ("train_bio", "org/not-on-this-machine"): "failed",
        ("benchmark", "org/not-on-this-machine"): "skipped",
    }
    failed = [r for r in runs if r["status"] == "failed"]
    assert all("ConfigError" in r["note"] and "(cell " in r["note"] for r in failed)
    assert lines[0].startswith("[1/8] train_math") and lines[-1].endswith("4 done, 2 skipped, 2 failed")
    assert " s left" in lines[0] or " min left" in lines[0]  # the progress line: a time left after the first run

    summary = json.loads((books / "summary" / "metrics.json").read_text())
    assert summary["workbooks"] == [f"{TINY}-bio.xlsx", f"{TINY}-math.xlsx"]
    rows = {(r["task"], r["stage"]): r for r in summary["summary"]}
    assert set(rows) == {(t, s) for t in ("math", "bio") for s in ("base", "epoch1", "epoch3")}
    for (task, _), row in rows.items():
        assert row["items"] == 4 and row["ratings"] == 0 and row["missing"] == 4
        assert (row["auto_score"] is None or row["auto_score"] != row["auto_score"]) == (task == "bio")
    log = [json.loads(line) for line in (smoke_sweep["root"] / "sweep_log.jsonl").read_text().splitlines()]
    assert [entry["status"] for entry in log].count("done") == 4
    assert len(log) == 8  # one line per run
    assert all(e["started"] <= e["ended"] for e in log if e["status"] == "done")


def test_a_killed_sweep_finishes_on_restart_without_redoing_finished_runs(tiny_model, tmp_path):
    args = ["--models", TINY, "--tasks", "math", "--preset", "smoke",
            "--output-root", str(tmp_path / "runs"), "--workbook-dir", str(tmp_path / "books")]
    proc = subprocess.Popen([sys.executable, "-m", "helpers.sweep", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trained = tmp_path / "runs" / "train_math"
    deadline = time.time() + 300
    while not list(trained.glob("*/metrics.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the kernel too: like a closed laptop
    proc.wait()
    finished = list(trained.glob("*/metrics.json"))
    assert len(finished) == 1
    first_mtime = finished[0].stat().st_mtime

    assert main(args) == 0
    lines = (tmp_path / "runs" / "sweep_log.jsonl").read_text().splitlines()
    last = [json.loads(line) for line in lines][-2:]
    assert [(e["study"], e["status"]) for e in last] == [("train_math", "skipped"), ("benchmark", "done")]
    assert finished[0].stat().st_mtime == first_mtime  # the finished training was not redone
    assert json.loads((tmp_path / "books" / "summary" / "metrics.json").read_text())["workbooks"] == [
        f"{TINY}-math.xlsx"]


def test_bad_sweep_arguments(capsys):
    assert main(["--models", "llama-9", "--dry-run"]) == 2
    assert "unknown model 'llama-9'" in capsys.readouterr().err
    assert main(["--tasks", "chemistry", "--dry-run"]) == 2
    assert "unknown task(s) chemistry" in capsys.readouterr().err
