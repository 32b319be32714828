"""The wall-time estimate printed before a training run: arithmetic and when it speaks."""

import json
from types import SimpleNamespace

from helpers.estimate import WallTimeEstimate, estimate_line, format_duration


def _run(callback, step_times, max_steps, first_step=0):
    clock = iter([t for i, s in enumerate(step_times) for t in (10.0 * i, 10.0 * i + s)])
    callback.clock = lambda: next(clock)
    state = SimpleNamespace(max_steps=max_steps, global_step=first_step)
    for _ in step_times:
        callback.on_step_begin(None, state, None)
        state.global_step += 1
        callback.on_step_end(None, state, None)


def test_estimate_skips_warm_up_and_uses_the_median(tmp_path):
    lines = []
    cb = WallTimeEstimate(tmp_path, skip=2, measure=3, memory=lambda: None, echo=lines.append)
    _run(cb, [30.0, 5.0, 1.0, 3.0, 2.0, 9.0], max_steps=100)  # warm-ups 30 s and 5 s are left out
    assert len(lines) == 1  # once, after the 5th step; the 6th changes nothing
    assert cb.result["step_s"] == 2.0 and cb.result["measured_steps"] == 3
    assert cb.result["expected_s"] == 200.0
    assert "100 steps x 2.00 s/step = 3.3 min" in lines[0]
    assert json.loads((tmp_path / "estimate.json").read_text())["step_s"] == 2.0


def test_estimate_of_a_resumed_run_counts_the_steps_left():
    lines = []
    cb = WallTimeEstimate(None, skip=1, measure=2, memory=lambda: None, echo=lines.append)
    _run(cb, [8.0, 4.0, 4.0], max_steps=50, first_step=40)
    assert cb.result["steps_this_run"] == 10 and cb.result["expected_s"] == 40.0
    assert "10 steps (of 50; resumed)" in lines[0]


def test_short_run_still_gets_an_estimate():
    lines = []
    cb = WallTimeEstimate(None, skip=2, measure=5, memory=lambda: None, echo=lines.append)
    _run(cb, [3.0, 1.0], max_steps=2)
    assert cb.result["step_s"] == 2.0 and len(lines) == 1


def test_memory_against_the_card_and_warning():
    mem = {"device": "Tesla T4", "peak_gib": 14.0, "total_gib": 14.7}
    line = estimate_line(1000, 0.5, mem)
    assert "on Tesla T4; peak 14.0 of 14.7 GiB (95%)" in line and "lower batch_size" in line
    assert "lower batch_size" not in estimate_line(1000, 0.5, mem | {"peak_gib": 6.0})
    assert [format_duration(s) for s in (30, 600, 7200)] == ["30 s", "10.0 min", "2.0 h"]
