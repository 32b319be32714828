"""The sweep's Ray executor and what keeps parallel runs safe. Unit tests (no Ray, no model): the
plan's order, a benchmark skipped after its failed training, the time-left estimate, log appends
from many writers, one merge per workbook at a time. Slow: a local Ray with two logical GPUs
sweeps the embedded model through the smoke preset, two runs at a time, with a worker killed."""

import datetime
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TINY
from openpyxl import load_workbook

import helpers.sweep as sweep
from helpers.sweep import Progress, append_log, eta_seconds, format_eta, plan, run_one, run_sweep
from helpers.workbook import merge_lock, update_rating_workbook

# --- unit: plan, skips, time left -------------------------------------------------------------------


def test_importing_the_sweep_does_not_load_ray():
    code = "import sys, helpers.sweep; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_plan_puts_each_training_before_its_benchmark(tmp_path):
    runs = plan(["smollm2-135m"], ["math", "bio"], "smoke", {"output_root": str(tmp_path)}, str(tmp_path / "b"))
    assert [(r["study"], r["task"]) for r in runs] == [("train_math", "math"), ("benchmark", "math"),
                                                      ("train_bio", "bio"), ("benchmark", "bio")]
    for train, bench in (runs[0:2], runs[2:4]):
        assert "after" not in train and bench["after"] == train["run_dir"]
        assert bench["params"]["train_run"] == str(train["run_dir"])
    assert len({r["run_dir"] for r in runs}) == 4


def fake_run(tmp_path, study="benchmark", task="math", after=None):
    run = {"study": study, "model": "m", "task": task, "run_dir": tmp_path / study / task, "params": {}}
    return run if after is None else {**run, "after": after}


def test_run_one_skips_what_is_finished_or_cannot_run_and_records_failures(tmp_path, monkeypatch):
    calls = []

    def execute(study, preset, params, log_output):
        calls.append(study)
        raise RuntimeError("ValueError: boom (cell 7; see x.ipynb)")

    monkeypatch.setattr(sweep, "execute", execute)
    log = tmp_path / "sweep_log.jsonl"
    finished = fake_run(tmp_path, "train_math")
    finished["run_dir"].mkdir(parents=True)
    (finished["run_dir"] / "metrics.json").write_text("{}")
    assert run_one(finished, "smoke", log)["note"] == "finished before"
    bench = fake_run(tmp_path, after=finished["run_dir"])
    result = run_one(bench, "smoke", log, training={"status": "failed"})
    assert (result["status"], result["note"], result["seconds"]) == ("skipped", "its training run failed", 0.0)
    assert calls == [] and not log.exists()  # neither ran, nor logged a start

    assert run_one(fake_run(tmp_path, "train_bio"), "smoke", log)["status"] == "failed"
    assert not log.exists()  # the serial sweep's log: one line per run, written by the sweep
    result = run_one(fake_run(tmp_path, "train_bio"), "smoke", log, announce=True)
    assert (result["status"], result["note"]) == ("failed", "ValueError: boom (cell 7; see x.ipynb)")
    assert result["pid"] == os.getpid() and result["started"] <= result["ended"]
    [started] = [json.loads(line) for line in log.read_text().splitlines()]
    assert (started["study"], started["status"], started["pid"]) == ("train_bio", "running", os.getpid())


def test_time_left_is_the_mean_per_study_shared_among_workers():
    finished = [{"study": "train_math", "status": "done", "seconds": 100.0},
                {"study": "train_math", "status": "done", "seconds": 200.0},
                {"study": "benchmark", "status": "done", "seconds": 30.0},
                {"study": "train_bio", "status": "failed", "seconds": 5.0},  # says nothing about a run's time
                {"study": "benchmark", "status": "skipped", "seconds": 0.0}]
    pending = ["train_math", "benchmark", "train_bio"]  # train_bio: no time of its own yet, the mean of all
    assert eta_seconds(finished, pending) == pytest.approx(150 + 30 + 110)
    assert eta_seconds(finished, pending, parallel=2) == pytest.approx(290 / 2)
    assert eta_seconds(finished, pending, parallel=8) == pytest.approx(290 / 3)  # never more workers than runs
    assert eta_seconds(finished, []) == 0.0
    assert eta_seconds(finished[3:], pending) is None  # nothing ran to the end yet
    assert [format_eta(s) for s in (None, 42, 600, 7200)] == [
        "time left unknown", "about 42 s left", "about 10 min left", "about 2.0 h left"]


def test_progress_line_per_run_with_time_left_and_a_log_line(tmp_path):
    runs = [fake_run(tmp_path, "train_math"), fake_run(tmp_path, after=tmp_path / "train_math" / "math"),
            fake_run(tmp_path, "train_bio", "bio"), fake_run(tmp_path, task="bio", after=tmp_path / "train_bio/bio")]
    lines = []
    progress = Progress(runs, tmp_path / "log.jsonl", lines.append, parallel=1)
    stamp = {"started": "2026-01-01T00:00:00.000", "ended": "2026-01-01T00:01:40.000", "host": "h", "pid": 1}
    progress.record(runs[0], {"status": "done", "note": "", "seconds": 60.0, **stamp})
    progress.record(runs[2], {"status": "failed", "note": "RuntimeError: x", "seconds": 50.0, **stamp})
    assert lines[0].startswith("[1/4] train_math  m ") and "done" in lines[0]
    # the bio benchmark will be skipped; left: the math benchmark, estimated from all runs done (60 s)
    assert "about 60 s left" in lines[1] and lines[1].startswith("[2/4] train_bio") and lines[1].endswith("x")
    progress.record(runs[3], {"status": "skipped", "note": "its training run failed", "seconds": 0.0, **stamp})
    progress.record(runs[1], {"status": "done", "note": "", "seconds": 20.0, **stamp})
    assert "left" not in lines[3]  # nothing left
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(e["study"], e["status"], e["started"], e["pid"]) for e in log][:2] == [
        ("train_math", "done", stamp["started"], 1), ("train_bio", "failed", stamp["started"], 1)]


def test_bad_executor_arguments(capsys):
    assert sweep.main(["--executor", "gpu", "--dry-run"]) == 2
    assert "--executor 'gpu' is not one of: serial, ray" in capsys.readouterr().err
    assert sweep.main(["--address", "auto", "--dry-run"]) == 2
    assert "are for --executor ray" in capsys.readouterr().err
    assert sweep.main(["--executor", "ray", "--gpus-per-run", "-1", "--dry-run"]) == 2
    assert "cannot be negative" in capsys.readouterr().err


# --- unit: many writers ------------------------------------------------------------------------------

def _append_many(path, writer, n):
    for i in range(n):
        append_log(path, {"writer": writer, "i": i, "pad": "x" * 20000})  # larger than a pipe's atomic write


def test_log_appends_from_processes_and_threads_stay_whole_lines(tmp_path):
    path = tmp_path / "sweep_log.jsonl"
    procs = [multiprocessing.get_context("fork").Process(target=_append_many, args=(path, f"p{k}", 100))
             for k in range(3)]
    threads = [threading.Thread(target=_append_many, args=(path, f"t{k}", 100)) for k in range(2)]
    for worker in [*procs, *threads]:
        worker.start()
    for worker in [*procs, *threads]:
        worker.join()
    entries = [json.loads(line) for line in path.read_text().splitlines()]  # a torn line fails here
    for writer in ("p0", "p1", "p2", "t0", "t1"):
        assert [e["i"] for e in entries if e["writer"] == writer] == list(range(100))


def test_log_append_waits_for_whoever_holds_the_log_lock(tmp_path):
    import fcntl

    path = tmp_path / "sweep_log.jsonl"
    path.write_text("")
    with open(path) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another host's worker, mid-append
        writer = threading.Thread(target=append_log, args=(path, {"status": "done"}))
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive() and path.read_text() == ""
        fcntl.flock(held, fcntl.LOCK_UN)
        writer.join(10)
    assert json.loads(path.read_text()) == {"status": "done"}


def _merge(path, ids):
    update_rating_workbook(path, [{"id": i, "question": f"q {i}", "answer_base": f"a {i}"} for i in ids],
                           answers={"answer_base": "rating_base"}, text_columns=["question"], title="math",
                           meta={"model_id": "m", "task": "math"})


def test_a_workbook_merge_waits_for_the_one_in_progress_and_leaves_no_lock_file(tmp_path):
    path = tmp_path / "m-math.xlsx"
    _merge(path, ["q-0"])
    with merge_lock(path):  # a benchmark of another stage, mid-merge
        merging = threading.Thread(target=_merge, args=(path, ["q-1"]))
        merging.start()
        time.sleep(1.0)
        assert merging.is_alive()
        ws = load_workbook(path)["math"]
        assert [c.value for c in ws["A"]][1:] == ["q-0"]
    merging.join(30)
    assert [c.value for c in load_workbook(path)["math"]["A"]][1:] == ["q-0", "q-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-math.xlsx"]


def test_concurrent_merges_into_one_workbook_lose_nothing(tmp_path):
    path = tmp_path / "m-math.xlsx"
    _merge(path, ["q-start"])
    procs = [multiprocessing.get_context("fork").Process(target=_merge, args=(path, [f"w{k}-{j}" for j in range(3)]))
             for k in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    ids = [c.value for c in load_workbook(path)["math"]["A"]][1:]
    assert sorted(ids) == sorted(["q-start", *(f"w{k}-{j}" for k in range(4) for j in range(3))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-math.xlsx"]  # no merged copy beside it


# --- slow: a local Ray with two logical GPUs --------------------------------------------------------

# what two sweeps of the same runs must agree on (timings and paths differ; the trained stages' answers may
# differ in the last bits between thread counts, the untrained model's may not)
DETERMINISTIC = {"train_math": ["study", "task", "model", "n_examples", "task_version", "dataset_source"],
                 "benchmark": ["study", "task", "model", "n_questions"]}


@pytest.fixture(scope="module")
def local_ray(tiny_model):  # tiny_model first: Ray's workers get the environment of its start (QLORA_MODELS)
    ray = pytest.importorskip("ray")
    for attempt in (1, 2, 3):
        try:  # a loaded machine can miss Ray's fixed start-up deadline (its agent starts too slowly): again
            ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 3:
                raise
    yield ray
    ray.shutdown()


def _log(root):
    return [json.loads(line) for line in (root / "sweep_log.jsonl").read_text().splitlines()]


def _kill_when_running(root, study, task, killed):
    """The worker that runs (study, task), killed with SIGKILL once its notebook has written run.json:
    mid-run, like a node that goes away."""
    deadline = time.time() + 600
    while time.time() < deadline:
        if (root / "sweep_log.jsonl").exists():
            for entry in _log(root):
                if (entry["study"], entry["task"], entry["status"]) == (study, task, "running") \
                        and (Path(entry["run_dir"]) / "run.json").exists():
                    os.kill(entry["pid"], signal.SIGKILL)
                    killed.append(entry)
                    return
        time.sleep(0.5)


@pytest.fixture(scope="module")
def sweeps(local_ray, smoke_sweep, tmp_path_factory):
    """A Ray sweep of math and bio whose bio benchmark's worker is killed, and the serial sweep of the same
    runs (conftest's smoke_sweep, shared with tests/test_sweep.py)."""
    tmp = tmp_path_factory.mktemp("sweeps")
    books = str(tmp / "books")
    serial = [r for r in smoke_sweep["runs"] if r["model"] == TINY]
    killed, lines = [], []
    killer = threading.Thread(target=_kill_when_running, args=(tmp / "ray", "benchmark", "bio", killed))
    killer.start()
    ray_runs = run_sweep([TINY], ["math", "bio"], preset="smoke", output_root=str(tmp / "ray"),
                         workbook_dir=books, compile_ratings=False, log=lines.append, executor="ray")
    killer.join()
    return {"tmp": tmp, "books": books, "serial": serial, "serial_root": smoke_sweep["root"], "ray": ray_runs,
            "killed": killed, "lines": lines}


def _times(entry):
    return datetime.datetime.fromisoformat(entry["started"]), datetime.datetime.fromisoformat(entry["ended"])


@pytest.mark.slow
def test_ray_runs_two_at_a_time_each_benchmark_after_its_training(sweeps):
    root = sweeps["tmp"] / "ray"
    ended = {(e["study"], e["task"]): e for e in _log(root) if e["status"] != "running"}
    (s1, e1), (s2, e2) = _times(ended["train_math", "math"]), _times(ended["train_bio", "bio"])
    assert max(s1, s2) < min(e1, e2)  # the two trainings overlapped
    assert _times(ended["benchmark", "math"])[0] >= e1
    [bio_started] = [e["started"] for e in _log(root) if (e["study"], e["task"], e["status"]) == ("benchmark", "bio",
                                                                                                     "running")]
    assert datetime.datetime.fromisoformat(bio_started) >= e2  # the killed one too
    assert all(line.startswith(f"[{i}/4] ") for i, line in enumerate(sweeps["lines"][:4], 1))
    assert sweeps["lines"][-1].endswith("3 done, 0 skipped, 1 failed")


@pytest.mark.slow
def test_ray_results_equal_the_serial_sweeps(sweeps):
    tmp = sweeps["tmp"]
    ray_runs = {(r["study"], r["task"]): r for r in sweeps["ray"]}
    compared = []
    for run in sweeps["serial"]:
        twin = ray_runs[run["study"], run["task"]]
        if (run["study"], run["task"]) == ("benchmark", "bio"):  # its worker was killed (the next test)
            continue
        compared.append((run["study"], run["task"]))
        assert (run["status"], twin["status"]) == ("done", "done")
        where = run["run_dir"].relative_to(sweeps["serial_root"]).parent
        assert where == twin["run_dir"].relative_to(tmp / "ray").parent
        assert run["run_dir"].name.rsplit("-", 1)[0] == twin["run_dir"].name.rsplit("-", 1)[0]
        training = run["study"].startswith("train_")
        if training:  # the training's folder hash leaves output_root out: the same name
            assert run["run_dir"].name == twin["run_dir"].name
        ours, theirs = (json.loads((r["run_dir"] / "metrics.json").read_text()) for r in (run, twin))
        for key in DETERMINISTIC["train_math" if training else "benchmark"]:
            assert ours[key] == theirs[key]
        if training:  # the same seed and data: the same steps and losses, up to thread order
            assert ours["train"]["steps"] == theirs["train"]["steps"]
            assert ours["train"]["train_loss"] == pytest.approx(theirs["train"]["train_loss"], rel=1e-3)
        else:
            assert ours["stages"]["base"] == theirs["stages"]["base"]
            assert {k: v["n"] for k, v in ours["stages"].items()} == {k: v["n"] for k, v in theirs["stages"].items()}
        assert sorted(p.name for p in run["run_dir"].iterdir()) == sorted(p.name for p in twin["run_dir"].iterdir())
    assert compared == [("train_math", "math"), ("benchmark", "math"), ("train_bio", "bio")]


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_a_rerun_redoes_nothing_finished(sweeps):
    root = sweeps["tmp"] / "ray"
    [killed] = sweeps["killed"]
    status = {(r["study"], r["task"]): (r["status"], r["note"]) for r in sweeps["ray"]}
    assert status["benchmark", "bio"][0] == "failed" and "worker lost" in status["benchmark", "bio"][1]
    assert [s for key, (s, _) in status.items() if key != ("benchmark", "bio")] == ["done"] * 3
    finished = {r["run_dir"]: (r["run_dir"] / "metrics.json").stat().st_mtime_ns for r in sweeps["ray"]
                if r["status"] == "done"}
    assert not (Path(killed["run_dir"]) / "metrics.json").exists()

    args = ["--models", TINY, "--tasks", "math,bio", "--preset", "smoke", "--output-root", str(root),
            "--workbook-dir", sweeps["books"], "--executor", "ray"]
    assert sweep.main(args) == 0
    log = _log(root)
    rerun = log[len(log) - 5:]  # the four results and the one start of the re-run
    assert [(e["study"], e["task"], e["status"]) for e in rerun if e["status"] != "running"][:3] == [
        ("train_math", "math", "skipped"), ("benchmark", "math", "skipped"), ("train_bio", "bio", "skipped")]
    assert (rerun[-1]["study"], rerun[-1]["task"], rerun[-1]["status"]) == ("benchmark", "bio", "done")
    assert sum(e["status"] == "running" for e in rerun) == 1
    assert {d: (d / "metrics.json").stat().st_mtime_ns for d in finished} == finished  # nothing redone
    assert (Path(killed["run_dir"]) / "metrics.json").exists()
    ws = load_workbook(Path(sweeps["books"]) / f"{TINY}-bio.xlsx")["bio"]
    assert len([c.value for c in ws["A"]][1:]) == 4  # the re-run's answers, once
    summary = json.loads((Path(sweeps["books"]) / "summary" / "metrics.json").read_text())
    assert summary["workbooks"] == [f"{TINY}-bio.xlsx", f"{TINY}-math.xlsx"]
