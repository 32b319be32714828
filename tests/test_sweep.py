"""The sweep over models x tasks with the embedded model (smoke preset): compiled summary, a
failing model recorded while the sweep goes on, and a killed sweep completed by a restart. Fast (the
notebooks replaced by a stand-in): --skip-failed, the table before compile_ratings and the exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY

import helpers.sweep as sweep
from helpers.config import ConfigError
from helpers.sweep import earlier_failures, main


@pytest.mark.slow
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
    assert lines[0].startswith("[1/8] train_math") and lines[-2].endswith("4 done, 2 skipped, 2 failed")
    assert lines[-1].startswith("ratings summary: ")  # compiled after the table
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


@pytest.mark.slow
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


# --- fast: the notebooks replaced by a stand-in -----------------------------------------------------------

OOM = "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (cell 9; see x/train_math.ipynb)"


class Notebooks:
    """Stands in for helpers.run_notebook.execute: records each started run (study, model); a training of a
    model in `failing` raises `failing`'s error, the others write metrics.json; compile_ratings raises
    `compile_error` if set."""

    def __init__(self, failing=None, compile_error=None):
        self.failing, self.compile_error, self.started = failing or {}, compile_error, []

    def __call__(self, study, preset, params, log_output=True):
        self.started.append((study, params.get("model")))
        if study == "compile_ratings" and self.compile_error:
            raise self.compile_error
        _, _, _, run_dir = sweep.resolve(study, preset, params)
        if study.startswith("train_") and params["model"] in self.failing:
            raise self.failing[params["model"]]
        if study == "benchmark":  # its workbook
            Path(params["workbook_dir"]).mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text("{}")
        return run_dir


def sweep_args(tmp_path, models="org/big,org/small", *more):
    return ["--models", models, "--tasks", "math", "--preset", "smoke", "--output-root", str(tmp_path / "runs"),
            "--workbook-dir", str(tmp_path / "books"), *more]


def read_log(tmp_path):
    return [json.loads(line) for line in (tmp_path / "runs" / "sweep_log.jsonl").read_text().splitlines()]


def test_skip_failed_does_not_start_a_run_that_failed_with_the_same_settings(tmp_path, monkeypatch, capsys):
    notebooks = Notebooks(failing={"org/big": RuntimeError(OOM)})
    monkeypatch.setattr(sweep, "execute", notebooks)
    assert main(sweep_args(tmp_path)) == 1
    assert ("train_math", "org/big") in notebooks.started
    capsys.readouterr()

    notebooks.started.clear()  # again with --skip-failed: the failure is not started again, and still exit code 1
    assert main(sweep_args(tmp_path, "org/big,org/small", "--skip-failed")) == 1
    assert notebooks.started == [("compile_ratings", None)]  # org/small: finished before
    out = capsys.readouterr().out
    assert f"failed earlier (skipped): {OOM}" in out
    table = out[out.index("study "):]
    assert table.splitlines()[1].split()[:4] == ["train_math", "org/big", "failed", "0.0"]
    assert table.splitlines()[-2] == "0 done, 3 skipped, 1 failed (1 failed earlier, skipped)"
    log = read_log(tmp_path)
    big = [e for e in log if e["model"] == "org/big" and e["study"] == "train_math"]
    assert [(e["status"], e["seconds"]) for e in big] == [("failed", big[0]["seconds"]), ("failed", 0.0)]
    assert big[1]["note"] == f"failed earlier (skipped): {OOM}" and big[1]["failed_earlier"] == OOM

    # a third time: the error named is the first one, not "failed earlier (skipped): failed earlier ..."
    assert main(sweep_args(tmp_path, "org/big", "--skip-failed")) == 1
    assert read_log(tmp_path)[-2]["note"] == f"failed earlier (skipped): {OOM}"
    assert main(sweep_args(tmp_path, "org/big", "--skip-failed", "--dry-run")) == 0
    assert f"(failed earlier (skipped): {OOM})" in capsys.readouterr().out

    notebooks.started.clear()  # other settings (another preset: another run folder) are a run of their own
    assert main(sweep_args(tmp_path, "org/big", "--skip-failed", "--preset", "demo")) == 1
    assert ("train_math", "org/big") in notebooks.started

    notebooks.started.clear()  # without the flag (the default) a failed run is retried; now it passes
    notebooks.failing = {}
    assert main(sweep_args(tmp_path, "org/big")) == 0
    assert notebooks.started == [("train_math", "org/big"), ("benchmark", "org/big"), ("compile_ratings", None)]
    assert "failed earlier" not in capsys.readouterr().out


def test_earlier_failures_is_the_last_result_of_each_run(tmp_path):
    log = tmp_path / "sweep_log.jsonl"
    lines = [{"run_dir": "a", "status": "failed", "note": "OOM"}, {"run_dir": "a", "status": "done", "note": ""},
             {"run_dir": "b", "status": "done", "note": ""}, {"run_dir": "b", "status": "failed", "note": "OOM"},
             {"run_dir": "b", "status": "running"}, {"run_dir": "b", "status": "skipped", "note": "finished before"},
             {"run_dir": "c", "status": "failed", "note": "worker lost (WorkerCrashedError); run the same sweep"},
             {"run_dir": "d", "status": "failed", "note": "failed earlier (skipped): OOM", "failed_earlier": "OOM"}]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"run_dir": "e", "sta\n')
    assert earlier_failures(log) == {"b": "OOM", "d": "OOM"}
    assert earlier_failures(tmp_path / "none.jsonl") == {}


@pytest.mark.parametrize("error", [ConfigError("workbook_dir 'x/books' is not a folder"),
                                   RuntimeError("KeyError: 'stage' (cell 4; see y/compile_ratings.ipynb)"),
                                   OSError("disk full")])
def test_a_failing_compile_ratings_is_one_line_after_the_table(tmp_path, monkeypatch, capsys, error):
    notebooks = Notebooks(failing={"org/big": RuntimeError(OOM)}, compile_error=error)
    monkeypatch.setattr(sweep, "execute", notebooks)
    assert main(sweep_args(tmp_path, "org/big")) == 1  # every run failed: 1, not 2 (bad input)
    captured = capsys.readouterr()
    assert "error:" not in captured.err
    out = captured.out.splitlines()
    assert out[-2].endswith("0 done, 1 skipped, 1 failed")  # the table's last line, then the one line
    why = str(error) if not isinstance(error, OSError) else "OSError: disk full"
    assert out[-1] == f"ratings summary not compiled: {why}"
    assert notebooks.started[-1] == ("compile_ratings", None)

    notebooks.failing = {}  # the runs pass, compile_ratings fails: still 1
    assert main(sweep_args(tmp_path, "org/big")) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("ratings summary not compiled: ")


def test_exit_codes_all_fine_and_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "execute", Notebooks())
    assert main(sweep_args(tmp_path, "org/small")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].endswith("2 done, 0 skipped, 0 failed") and out[-1].startswith("ratings summary: ")
    assert main(sweep_args(tmp_path, "org/small", "--preset", "nonexistent")) == 2  # refused before any run
    assert "error:" in capsys.readouterr().err
