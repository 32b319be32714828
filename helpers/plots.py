"""Figures the studies share."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LABELS = {"exact_match": "exact-match accuracy", "digit_accuracy": "digit accuracy",
          "edit_distance": "Levenshtein distance"}


def subplots(nrows: int = 1, ncols: int = 1, **kw):
    """(figure, axes) like pyplot.subplots, but the figure is drawn by its own Agg canvas: pyplot's
    global backend is never switched, so a user's own `plt.show()` in a notebook keeps working, and
    nothing needs a display (papermill, CI). The notebooks show the saved PNG."""
    fig = Figure(figsize=kw.pop("figsize", None))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kw)


def plot_by_k(tables: dict[str, dict[int, dict]], metrics, *, shade: tuple[int, int] | None, path, title=""):
    """One panel per metric, one line per model stage (e.g. base, fine-tuned), x = digit count k;
    `shade` marks the training range."""
    fig, axes = subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, table in tables.items():
            ks = sorted(table)
            ax.plot(ks, [table[k][metric] for k in ks], marker="o", label=label)
        if shade:
            ax.axvspan(shade[0] - 0.5, shade[1] + 0.5, color="grey", alpha=0.15, label="training range")
        ax.set_xlabel("digits per operand (k)")
        ax.set_ylabel(LABELS.get(metric, metric))
        ax.set_xticks(sorted({k for t in tables.values() for k in t}))
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _literal(label) -> str:
    """`label` as plain text: matplotlib reads text between two $ as mathtext and fails on most of it."""
    return str(label).replace("$", r"\$")


def plot_rating_bars(summary, path):
    """Bar chart per task: mean human rating by model, one bar per stage, 95% CI as error bars.
    `summary` is helpers.ratings.summarize's table."""
    tasks = sorted(summary["task"].unique())
    fig, axes = subplots(1, max(1, len(tasks)), figsize=(6 * max(1, len(tasks)), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = summary[summary["task"] == task]
        table = part.pivot(index="model", columns="stage", values="mean_rating")
        errors = part.pivot(index="model", columns="stage", values="ci95").fillna(0)
        order = sorted(table, key=lambda s: (s != "base", int(s[5:]) if s[5:].isdigit() else 0, s))
        # model and stage names come from file names and headers: shown as written, never as mathtext
        table, errors = (t[order].rename(index=_literal, columns=_literal) for t in (table, errors))
        table.plot.bar(ax=ax, yerr=errors, capsize=3, rot=30)
        ax.set_ylim(0, 5.5)
        ax.set_ylabel("mean human rating (1-5)")
        ax.set_title(task)
    return save_figure(fig, path)


def save_figure(fig, path) -> Path:
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return Path(path)


def plot_accuracy_bars(tables: dict[str, dict[str, dict[str, dict]]], path, *, title: str = ""):
    """Grouped bars, one panel per table (e.g. scoring method): x = evaluated subsets, one bar per
    row (model), the 95% interval as error bars (Wilson: not symmetric). tables[panel][row][column] =
    {"accuracy", "accuracy_summary": stats.score_summary, ...}; a run made before has "ci95" (a half-width)."""
    fig, axes = subplots(1, len(tables), figsize=(7 * len(tables), 4.2), squeeze=False)
    for ax, (panel, table) in zip(axes[0], tables.items()):
        rows = list(table)
        columns = list(next(iter(table.values()))) if rows else []
        width = 0.8 / max(1, len(rows))
        for j, row in enumerate(rows):
            xs = [i + (j - (len(rows) - 1) / 2) * width for i in range(len(columns))]
            values = [100 * (table[row][c]["accuracy"] if table[row][c] else float("nan")) for c in columns]
            errors = list(zip(*[_error_bar(table[row][c]) for c in columns])) or [[], []]
            ax.bar(xs, values, width, yerr=[[100 * e for e in side] for side in errors], capsize=2, label=row)
        ax.axhline(25, color="grey", linestyle=":", linewidth=1, label="chance (4 options)")
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels([c.replace("_", "\n") for c in columns])
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(panel)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _error_bar(cell) -> tuple[float, float]:
    """(below, above) the accuracy: from its interval's bounds, else an old run's half-width; 0 without one."""
    cell = cell or {}
    summary, acc = cell.get("accuracy_summary") or {}, cell.get("accuracy")
    low, high = summary.get("ci_low"), summary.get("ci_high")
    if acc is not None and low is not None and high is not None and low == low and high == high:
        return max(0.0, acc - low), max(0.0, high - acc)
    half = cell.get("ci95") or 0.0
    return (0.0, 0.0) if half != half else (half, half)


def plot_loss_curve(points: list[dict], stages: list[dict], path, *, title: str = ""):
    """Training loss at each logged step (`points`: {"step", "loss", "schedule"}), one line per
    learning-rate schedule on one step axis, a dashed line at each stage ({"epoch", "global_step"})."""
    fig, ax = subplots(figsize=(7, 3.8))
    for schedule in sorted({p.get("schedule", 0) for p in points}):
        part = [p for p in points if p.get("schedule", 0) == schedule]
        ax.plot([p["step"] for p in part], [p["loss"] for p in part], marker=".", label=f"schedule {schedule + 1}")
    for stage in stages:
        ax.axvline(stage["global_step"], color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"epoch {stage['epoch']}", (stage["global_step"], 1), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=8, color="grey")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    if len({p.get("schedule", 0) for p in points}) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
