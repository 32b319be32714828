"""helpers/report.py: fake run folders in a tmp dir -> one HTML page, read back with html.parser."""

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from test_published import FORGETTING_CFG, FORGETTING_METRICS, SVL_CFG, SVL_METRICS

from helpers.published import compare, write_comparison
from helpers.report import main, parse_pipe_table, write_report


class Page(HTMLParser):
    """Tables (rows of cell texts), links, image sources, every start tag, and all text of a page."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.links, self.images, self.tags, self.text = [], [], [], [], []
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell += data

    def table_with(self, cell):
        return next(t for t in self.tables if any(cell in row for row in t))

    def row_with(self, cell):
        return next(row for t in self.tables for row in t if cell in row)


def png(path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(path)
    return path


def make_run(root, study, name, metrics, config):
    folder = root / study / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if config is not None:
        (folder / "run.json").write_text(json.dumps({"study": study, "config": config}))
    return folder


def fake_runs(tmp_path):
    root = tmp_path / "benchmarks"
    forgetting = make_run(root, "forgetting", "llama-3.2-1b-0123abcd", {}, FORGETTING_CFG)
    files = {"figure": str(png(forgetting / "forgetting.png")), "md": str(forgetting / "forgetting_table.md")}
    (forgetting / "forgetting_table.md").write_text("| metric |\n|---|\n")
    files |= write_comparison(compare("forgetting", FORGETTING_METRICS, FORGETTING_CFG), forgetting)  # as wired
    (forgetting / "metrics.json").write_text(json.dumps({**FORGETTING_METRICS, "files": files}))

    # recorded on another machine (Colab's Drive): the workbook is found again beside the run
    svl_files = {"workbook": "/content/drive/MyDrive/benchmarks/small_vs_large/evil/ratings_medqa.xlsx",
                 "generations": "/content/drive/MyDrive/gone.jsonl"}
    svl = make_run(root, "small_vs_large", "evil<b>-run", {**SVL_METRICS, "model": "evil<b>", "files": svl_files,
                                                           "table": {"base": {"GSM8K flexible-extract": 35.0}}},
                   {**SVL_CFG, "model": "evil<b>"})
    (svl / "ratings_medqa.xlsx").write_bytes(b"PK not really a workbook")
    record = json.loads((svl / "run.json").read_text())
    (svl / "run.json").write_text(json.dumps({**record, "preset": "my-preset"}))  # a runner that records it

    make_run(root, "addition", "broken", {}, None)
    (root / "addition" / "broken" / "metrics.json").write_text("{not json")

    summary = tmp_path / "summary"
    summary.mkdir()
    (summary / "ratings_summary.xlsx").write_bytes(b"PK")
    (summary / "metrics.json").write_text(json.dumps({
        "study": "compile_ratings", "workbooks": ["llama-3.1-8b-math.xlsx"], "problem_count": 0,
        "files": {"workbook": str(summary / "ratings_summary.xlsx")},
        "summary": [{"model": "llama-3.1-8b", "task": "math", "stage": "epoch3", "items": 10, "ratings": 10,
                     "mean_rating": 4.5, "ci_low": 4.2, "ci_high": 4.8, "auto_score": 0.7}]}))
    return root, summary


def test_report_gathers_runs_tables_links_and_figures(tmp_path):
    root, summary = fake_runs(tmp_path)
    out = write_report(root, tmp_path / "site" / "report.html", summary)
    page = Page(out.read_text())

    runs = page.row_with("llama-3.2-1b-0123abcd")
    assert runs[1] == "llama-3.2-1b" and "data_source=hub" in runs[2] and "88.0" in runs
    # the published table read back from the run's published_vs_ours.md, bars unescaped
    flex = page.row_with("Table 2: GSM8K | Flexible Accuracy, Base Llama 3.2 1B (%)")
    assert flex[1:] == ["33.51", "± 1.30 (1 SE: the paper calls it a 95% CI, but it equals one standard error)",
                        "33.00 [31.00, 35.00]", "-0.51", "yes", "yes", ""]
    # computed for the run without published_vs_ours.md; the model's name is text, never markup
    qlora = page.row_with("Results table (only table): Base+QLoRA | Math, Accuracy (fraction)")
    assert qlora[6] == "no" and "model evil<b>, the study used Mistral-7B-Instruct" in qlora[7]
    assert "b" not in page.tags and "evil<b>" in page.row_with("evil<b>-run")
    assert page.row_with("evil<b>-run")[2].startswith("preset my-preset, ") and "; preset my-preset" in qlora[7]
    assert page.row_with("llama-3.1-8b")[5] == "4.50"  # the ratings summary, from --ratings-summary

    site = out.parent
    workbook = next(h for h in page.links if h.endswith("ratings_medqa.xlsx"))
    target = root / "small_vs_large" / "evil<b>-run" / "ratings_medqa.xlsx"
    assert (site / unquote(workbook)).resolve() == target.resolve()
    assert not Path(workbook).is_absolute() and "%3C" in workbook  # relative, and quoted
    assert any(h.endswith("summary/ratings_summary.xlsx") for h in page.links)
    assert sum(h.endswith("published_vs_ours.md") for h in page.links) == 1  # listed in files and found: once
    assert "generations: not found (moved?)" in "".join(page.text)

    # figures are embedded: the forgetting run's own and its published_vs_ours.png; the page needs no files
    pngs = [base64.b64decode(src.split(",", 1)[1]) for src in page.images]
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert len(pngs) == 2 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert "metrics.json unreadable" in "".join(page.text)  # the broken run is named, the rest is there


def test_report_command_line(tmp_path, capsys):
    root, _ = fake_runs(tmp_path)
    assert main(["--output-root", str(root), "--ratings-summary", ""]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == root / "report.html" and "llama-3.1-8b" not in written.read_text()
    assert main(["--output-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a folder" in err


def test_parse_pipe_table_reads_escaped_bars():
    header, rows, other = parse_pipe_table("# title\n\nintro\n\n| a | b \\| c |\n|---|---|\n| 1 | x\\|y |\n\nend\n")
    assert header == ["a", "b | c"] and rows == [["1", "x|y"]] and other == ["intro", "end"]
