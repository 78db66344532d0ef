"""PNG bar charts of the sections' figures (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from .common import Chart

__all__ = ["draw"]


def draw(chart: Chart, directory: Path) -> Path:
    """Draw ``chart`` as ``directory / chart.filename``; the path written."""
    import matplotlib

    matplotlib.use("Agg")  # files only: the benchmark machine has no display
    import matplotlib.pyplot as plt

    labels = list(chart.values)
    values = [chart.values[label] for label in labels]
    height = max(2.5, 0.45 * len(labels) + 1.2)
    fig, ax = plt.subplots(figsize=(9, height))
    try:
        colors = [
            "#c0392b" if chart.target is not None and v > chart.target else "#2e86c1"
            for v in values
        ]
        bars = ax.barh(range(len(labels)), values, color=colors)
        ax.set_yticks(range(len(labels)), labels=[_wrap(label) for label in labels])
        ax.invert_yaxis()  # the first variant (the baseline) on top
        ax.set_xlabel(chart.ylabel)
        ax.set_title(chart.title)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                f"{value:.3g}",
                (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        if chart.target is not None:
            ax.axvline(chart.target, color="#555555", linestyle="--", linewidth=1)
            ax.annotate(
                f"target {chart.target:g}",
                (chart.target, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -10),
                textcoords="offset points",
                fontsize=8,
            )
        ax.margins(x=0.15)
        fig.tight_layout()
        path = directory / chart.filename
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def _wrap(label: str, width: int = 42) -> str:
    words, lines, line = label.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)
