"""Every run under an output root on one static HTML page: per study, a table of its runs (model,
preset and settings, key metrics), each run's published-vs-ours table, its figures and links to its
files (rating workbooks, tables, generations).

    python -m helpers.report                                  # benchmarks/ -> benchmarks/report.html
    python -m helpers.report --output-root runs --out runs.html --ratings-summary ''

The page needs neither Jupyter nor a server: figures are embedded in it (PNG as base64 data URIs), so
it stays whole when moved or mailed; files that cannot be embedded (workbooks, CSV, notebooks) are
linked by paths relative to the page, so they open while the page sits where it was written. Every
text on the page is escaped (names and metrics come from files people edit).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import html
import json
import math
import os
import sys
from pathlib import Path
from urllib.parse import quote

from helpers.config import REPO_ROOT, ConfigError, output_path

STUDY_ORDER = ["addition", "mmlu_teacher", "forgetting", "small_vs_large", "train_math", "train_bio", "benchmark",
               "compile_ratings"]
# what the runs table shows of each run's config (besides model and preset)
SETTINGS = {
    "addition": ["n_train", "n_test_per_k", "train_digits_min", "train_digits_max", "test_digits_max", "lora_r",
                 "lora_dropout", "epochs", "max_steps"],
    "mmlu_teacher": ["teacher_model", "dataset_source", "subjects", "max_questions", "n_generate", "lora_r", "epochs",
                     "max_steps"],
    "forgetting": ["data_source", "n_train", "n_hellaswag", "n_gsm8k", "n_mmlu", "mmlu_subjects", "gsm8k_shots",
                   "lora_r", "epochs", "max_steps"],
    "small_vs_large": ["data_source", "n_pool", "n_test", "k_demos", "retriever", "large_model", "lora_r", "epochs"],
    "train_math": ["dataset_source", "n_samples", "epochs", "stage_epochs", "lora_r"],
    "train_bio": ["dataset_source", "n_samples", "epochs", "stage_epochs", "lora_r"],
    "benchmark": ["task", "stages", "max_questions", "train_run"],
    "compile_ratings": ["workbook_dir"],
}
CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f0f0f0}img{max-width:100%;border:1px solid #eee;margin:4px 0}
.problem{color:#a00}.note{color:#555;font-size:0.85em}"""


@dataclasses.dataclass
class Run:
    study: str
    folder: Path
    metrics: dict = dataclasses.field(default_factory=dict)
    config: dict = dataclasses.field(default_factory=dict)
    problem: str = ""  # why the run could not be read


def _read_run(folder: Path, study: str | None = None) -> Run:
    run = Run(study or folder.parent.name, folder)
    try:
        run.metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError) as err:
        run.problem = f"metrics.json unreadable: {err}"
        return run
    if not isinstance(run.metrics, dict):
        run.problem, run.metrics = "metrics.json is not a JSON object", {}
        return run
    run.study = study or run.metrics.get("study") or run.study
    if (folder / "run.json").is_file():
        try:
            record = json.loads((folder / "run.json").read_text())
            run.config = dict(record.get("config") or {})
            if record.get("preset"):  # where the runner records it; else detect_preset infers it
                run.config["preset"] = record["preset"]
        except (OSError, ValueError, AttributeError) as err:
            run.problem = f"run.json unreadable: {err}"
    return run


def find_runs(output_root, ratings_summary=None) -> list[Run]:
    """Every <output_root>/<study>/<run>/ with a metrics.json (helpers/runs.py's layout), and the
    compile_ratings summary folder when given and present."""
    root = output_path(output_root)
    if not root.is_dir():
        raise ConfigError(f"--output-root {output_root} is not a folder: give the folder the runs were written to, "
                          "e.g. benchmarks")
    runs = [_read_run(path.parent) for path in sorted(root.glob("*/*/metrics.json"))]
    if ratings_summary:
        folder = output_path(ratings_summary)
        if (folder / "metrics.json").is_file() and folder not in [r.folder for r in runs]:
            runs.append(_read_run(folder, "compile_ratings"))
    order = {s: i for i, s in enumerate(STUDY_ORDER)}
    return sorted(runs, key=lambda r: (order.get(r.study, len(order)), r.study, r.folder.name))


# ------------------------------------------------------------------------------------ what a run shows

def _pct(x) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def _num(x, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def _get(d, *keys):
    for key in keys:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def key_metrics(study: str, metrics: dict) -> dict[str, str]:
    """The few numbers that tell one run of `study` from another, as text."""
    m = metrics
    if study == "addition":
        return {f"{stage} {where}": _pct(_get(m, stage, f"{where}_exact_match"))
                for stage in ("base", "finetuned") for where in ("in_range", "out_of_range")}
    if study == "forgetting":
        out = {f"{stage} {key}": _pct(_get(m, stage, key, "mean")) for key in ("gsm8k_flexible", "hellaswag_acc_norm",
               "mmlu_acc") for stage in ("base", "finetuned")}
        out |= {name: _num(_get(m, "summary", key, "value"), 1) for key, name in
                (("forgetting_rate", "FR %"), ("ability_augmentation", "ΔA points"), ("knowledge_loss", "ΔK points"))}
        return out
    if study == "mmlu_teacher":
        table = _get(m, "tables", "generate") or {}
        return {f"{row} (all)": _pct(_get(cols, "all", "accuracy")) for row, cols in table.items()}
    if study == "small_vs_large":
        out = {}
        for config, scores in (m.get("table") or {}).items():
            for column, value in (scores or {}).items():
                if column.startswith(("GSM8K flexible", "MedQA BERTScore F1", "Beer F1")) and value is not None:
                    best = out.get(f"best {column}")
                    if best is None or value > best[1]:
                        out[f"best {column}"] = (config, value)
        return {k: f"{c} {v:.1f}%" for k, (c, v) in out.items()}
    if study in ("train_math", "train_bio"):
        t = m.get("train") or {}
        return {"examples": str(m.get("n_examples", "-")), "steps": str(t.get("steps", "-")),
                "loss": f"{_num(t.get('loss_first'), 3)} → {_num(t.get('loss_last'), 3)}"}
    if study == "benchmark":
        out = {"questions": str(m.get("n_questions", "-"))}
        out |= {f"{stage} auto score": _pct(s.get("auto_score")) for stage, s in (m.get("stages") or {}).items()
                if isinstance(s, dict) and "auto_score" in s}
        return out
    if study == "compile_ratings":
        return {"workbooks": str(len(m.get("workbooks") or [])), "problems": str(m.get("problem_count", 0))}
    return {}


def settings_text(study: str, config: dict) -> str:
    from helpers.published import detect_preset

    if not config:
        return "" if study == "compile_ratings" else "no run.json"  # the summary folder has none by design
    parts = [f"preset {p}" for p in [detect_preset(study, config)] if p]
    parts += [f"{k}={_show(config[k])}" for k in SETTINGS.get(study, []) if k in config and config[k] not in ("", None)]
    return ", ".join(parts)


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _resolve(path, folder: Path) -> Path | None:
    """A path a run recorded, found again: as written, beside the run (a moved or copied folder), or
    under the repository (a relative path)."""
    p = Path(str(path)).expanduser()
    for candidate in (p, folder / p.name, REPO_ROOT / p):
        if candidate.is_file():
            return candidate
    return None


def run_files(run: Run) -> dict[str, Path | None]:
    """metrics.json's "files" (and the workbook a benchmark run names) by kind, each found again or None."""
    files = {}
    for kind, path in (run.metrics.get("files") or {}).items():
        if isinstance(path, str) and path:
            files[kind] = _resolve(path, run.folder)
    for kind in ("md", "png"):  # written by a notebook that did not list them in "files"
        path = run.folder / f"published_vs_ours.{kind}"
        if path.is_file() and path not in files.values():
            files[f"published_vs_ours_{kind}"] = path
    return files


def figures(run: Run) -> list[Path]:
    found = sorted(run.folder.glob("*.png"))
    found += [p for k, p in run_files(run).items() if p is not None and p.suffix.lower() == ".png"]
    return list(dict.fromkeys(p.resolve() for p in found))


# ------------------------------------------------------------------------------------ published vs ours

def parse_pipe_table(text: str) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, other lines) of the first pipe table in markdown `text` (`\\|` is a literal bar)."""
    def cells(line: str) -> list[str]:
        out, cell, chars = [], "", iter(line.strip()[1:])
        for ch in chars:
            if ch == "\\":
                cell += next(chars, "")
            elif ch == "|":
                out.append(cell.strip())
                cell = ""
            else:
                cell += ch
        return out

    header, rows, other, in_table, done = [], [], [], False, False
    for line in text.splitlines():
        if line.strip().startswith("|") and not done:
            in_table = True
            if not header:
                header = cells(line)
            elif not set(line.strip()) <= set("|-: "):
                rows.append(cells(line))
            continue
        if in_table:
            done = True
        if line.strip() and not line.startswith("# "):
            other.append(line.strip())
    return header, rows, other


def comparison_for(run: Run) -> tuple[list[str], list[list[str]], list[str], str]:
    """(header, rows, notes, where from): the run's published_vs_ours.md, else computed now."""
    from helpers.published import SOURCE_OF, compare, comparison_cells, comparison_markdown

    md = run.folder / "published_vs_ours.md"
    if md.is_file():
        header, rows, notes = parse_pipe_table(md.read_text())
        return header, rows, notes, "from the run's published_vs_ours.md"
    if run.study not in SOURCE_OF:
        return [], [], [f"no published study for '{run.study}'"], ""
    table = compare(run.study, run.metrics, run.config)
    header, rows = comparison_cells(table) if not table.empty else ([], [])
    _, _, notes = parse_pipe_table(comparison_markdown(table))
    return header, rows, notes, "computed for this report (the run has no published_vs_ours.md)"


# ------------------------------------------------------------------------------------ HTML

def _e(text) -> str:
    return html.escape(str(text), quote=True)


def html_table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{_e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(path.name)}"><figcaption class="note">' \
           f"{_e(path.name)}</figcaption></figure>"


def _link(path: Path, page_dir: Path, label: str) -> str:
    href = quote(Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix())
    return f'<a href="{_e(href)}">{_e(label)}</a>'


def _results_table(run: Run) -> str:
    """The run's own results, where its metrics hold a table (small_vs_large's, compile_ratings' summary)."""
    if run.study == "small_vs_large" and run.metrics.get("table"):
        table = run.metrics["table"]
        columns = list(dict.fromkeys(c for scores in table.values() for c in (scores or {})))
        rows = [[config, *(_num((scores or {}).get(c), 1) for c in columns)] for config, scores in table.items()]
        return "<h4>results (%)</h4>" + html_table(["configuration", *columns], rows)
    if run.study == "compile_ratings" and run.metrics.get("summary"):
        cols = ["model", "task", "stage", "items", "ratings", "mean_rating", "ci_low", "ci_high", "auto_score"]
        rows = [[_num(r.get(c)) if isinstance(r.get(c), float) else str(r.get(c, "-")) for c in cols]
                for r in run.metrics["summary"]]
        return "<h4>ratings summary</h4>" + html_table(cols, rows)
    return ""


def render_run(run: Run, page_dir: Path) -> str:
    parts = [f'<h3 id="{_e(run.study)}-{_e(run.folder.name)}">{_e(run.folder.name)}</h3>',
             f'<p class="note">{_e(run.folder)}</p>']
    if run.problem:
        return "".join(parts) + f'<p class="problem">{_e(run.problem)}</p>'
    parts.append(_results_table(run))
    try:
        header, rows, notes, origin = comparison_for(run)
    except Exception as err:  # one broken run must not cost the whole page: say what failed instead
        header, rows, notes, origin = [], [], [f"could not compare with the published numbers: {err}"], ""
    parts.append("<h4>published vs this run</h4>")
    if origin:
        parts.append(f'<p class="note">{_e(origin)}</p>')
    if header:
        parts.append(html_table(header, rows, "published"))
    parts += [f'<p class="note">{_e(n)}</p>' for n in notes]
    links = []
    for kind, path in run_files(run).items():
        if path is None:
            links.append(f"<li>{_e(kind)}: not found (moved?)</li>")
        elif path.suffix.lower() != ".png":
            links.append(f"<li>{_e(kind)}: {_link(path, page_dir, path.name)}</li>")
    if links:
        parts.append("<h4>files</h4><ul>" + "".join(links) + "</ul>")
    parts += [_img(p) for p in figures(run)]
    return "".join(parts)


def render_report(runs: list[Run], page_dir: Path, title: str = "QLoRA small LLMs: runs and published results") -> str:
    from helpers.published import SOURCE_OF, load_published

    studies = list(dict.fromkeys(r.study for r in runs))
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{_e(title)}</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
           f'<p class="note">{len(runs)} run(s); written '
           f"{_e(datetime.datetime.now().isoformat(timespec='seconds'))}</p>"]
    if not runs:
        out.append("<p>No runs found.</p>")
    out.append("<ul>" + "".join(f'<li><a href="#{_e(s)}">{_e(s)}</a></li>' for s in studies) + "</ul>")
    for study in studies:
        group = [r for r in runs if r.study == study]
        out.append(f'<h2 id="{_e(study)}">{_e(study)}</h2>')
        if study in SOURCE_OF:
            out.append(f'<p class="note">paper: {_e(load_published()[SOURCE_OF[study]]["study"])}</p>')
        labels = list(dict.fromkeys(k for r in group for k in key_metrics(study, r.metrics)))
        rows = []
        for r in group:
            values = key_metrics(study, r.metrics)
            model = r.config.get("model") or r.metrics.get("model") or "-"
            rows.append([r.folder.name, model, r.problem or settings_text(study, r.config),
                         *(values.get(k, "-") for k in labels)])
        out.append(html_table(["run", "model", "preset / settings", *labels], rows, "runs"))
        out += [render_run(r, page_dir) for r in group]
    out.append("</body></html>")
    return "\n".join(out)


def write_report(output_root="benchmarks", out=None, ratings_summary=None) -> Path:
    """Gather the runs, write the page (default <output_root>/report.html), return its path."""
    runs = find_runs(output_root, ratings_summary)
    path = Path(out) if out else output_path(output_root) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(runs, path.parent), encoding="utf-8")
    for run in runs:
        if run.problem:
            print(f"{run.folder}: {run.problem}", file=sys.stderr)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-root", default="benchmarks", help="the folder the runs were written to")
    parser.add_argument("--out", help="the HTML file (default: <output-root>/report.html)")
    parser.add_argument("--ratings-summary", default="benchmark_data/summary",
                        help="compile_ratings' output folder ('' to leave it out)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.output_root, args.out, args.ratings_summary)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
