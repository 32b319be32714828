"""Figures the studies share."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: papermill, CI
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"exact_match": "exact-match accuracy", "digit_accuracy": "digit accuracy",
          "edit_distance": "Levenshtein distance"}


def plot_by_k(tables: dict[str, dict[int, dict]], metrics, *, shade: tuple[int, int] | None, path, title=""):
    """One panel per metric, one line per model stage (e.g. base, fine-tuned), x = digit count k;
    `shade` marks the training range."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
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
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
