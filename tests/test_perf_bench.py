"""scripts/perf_bench.py's reduction of repeated rounds: the median per architecture and path, the
failed rounds left out, and the table's ratios taken from those medians."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import perf_bench  # noqa: E402


def row(path, tokens, peak, round_, arch="llama"):
    return {"arch": arch, "path": path, "part": "train", "tokens_per_s": tokens, "peak_gib": peak,
            "flop_params": 10**9, "round": round_}


def test_median_over_rounds_skips_failures():
    rows = [row("repo", 100, 3.0, 0), row("repo", 400, 3.5, 1), row("repo", 200, 3.2, 2),
            {"arch": "llama", "path": "repo", "part": "train", "error": "timed out after 70 s", "round": 3},
            row("plain", 50, 9.0, 0)]
    merged = {r["path"]: r for r in perf_bench._over_rounds(rows, "tokens_per_s")}
    assert merged["repo"]["tokens_per_s"] == 200
    assert merged["repo"]["rounds"] == [100, 400, 200]
    assert merged["repo"]["peak_gib"] == 3.5
    assert merged["plain"]["rounds"] == [50]


def test_every_round_failed_keeps_the_error():
    rows = [{"arch": "gemma", "path": "repo", "part": "train", "error": "timed out after 70 s", "round": r}
            for r in range(2)]
    (merged,) = perf_bench._over_rounds(rows, "tokens_per_s")
    assert merged["error"] == "timed out after 70 s" and merged["rounds"] == []


def test_table_ratios_use_the_medians(capsys):
    rows = [row("repo", 90, 3.0, 0), row("repo", 130, 3.0, 1), row("repo", 100, 3.0, 2),
            row("unsloth", 100, 3.0, 0), row("plain", 40, 10.0, 0)]
    args = argparse.Namespace(layers=4, batch=4, seq=1024, short_batch=8, new_tokens=256)
    perf_bench.print_table(rows, args)
    lines = capsys.readouterr().out.splitlines()
    repo_line = next(line for line in lines if line.startswith("llama") and " repo " in line)
    assert " 1.00x " in repo_line and " 2.50x " in repo_line and " 30% " in repo_line
    assert "rounds: [90, 130, 100]" in repo_line
