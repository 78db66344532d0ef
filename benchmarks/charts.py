"""PNG charts of the sections' figures (matplotlib, no display needed): bars with their
spread and notes, or lines. ``python -m benchmarks.charts results.json [dir]`` draws
them again from a run's ``results.json`` (each section says what its charts are)."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import Chart

__all__ = ["draw", "redraw"]

_BASELINE = "#2e86c1"
_MISSED = "#c0392b"


def plain(text: str) -> str:
    """``text`` without its markdown (backticks, bold), for a chart."""
    return re.sub(r"\*\*|`", "", text)


def draw(chart: Chart, directory: Path) -> Path:
    """Draw ``chart`` as ``directory / chart.filename``; the path written."""
    import matplotlib

    matplotlib.use("Agg")  # files only: the benchmark machine has no display
    import matplotlib.pyplot as plt

    if chart.series:
        fig, ax = plt.subplots(figsize=(9, 4))
        try:
            for label, points in chart.series.items():
                ax.plot(
                    [x for x, _ in points], [y for _, y in points], marker=".", label=plain(label)
                )
            ax.set_xlabel(chart.xlabel)
            ax.set_ylabel(chart.ylabel)
            ax.set_title(plain(chart.title))
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8, loc="lower right")
            ax.grid(alpha=0.3)
            fig.tight_layout()
            path = directory / chart.filename
            fig.savefig(path, dpi=100)
        finally:
            plt.close(fig)
        return path

    labels = list(chart.values)
    values = [chart.values[label] for label in labels]
    height = max(2.5, 0.5 * len(labels) + 1.4)
    width = 11 if chart.notes else 9
    fig, ax = plt.subplots(figsize=(width, height))
    try:
        colors = [
            _MISSED if chart.target is not None and v > chart.target else _BASELINE for v in values
        ]
        bars = ax.barh(range(len(labels)), values, color=colors)
        if chart.spread:
            low = [
                v - chart.spread.get(label, (v, v))[0]
                for label, v in zip(labels, values, strict=True)
            ]
            high = [
                chart.spread.get(label, (v, v))[1] - v
                for label, v in zip(labels, values, strict=True)
            ]
            ax.errorbar(
                values,
                range(len(labels)),
                xerr=[[max(0.0, d) for d in low], [max(0.0, d) for d in high]],
                fmt="none",
                ecolor="#333333",
                capsize=3,
                linewidth=1,
            )
        ax.set_yticks(range(len(labels)), labels=[_wrap(plain(label)) for label in labels])
        ax.invert_yaxis()  # the first variant (the baseline) on top
        xlabel = chart.ylabel + (f"\nbars: median; {chart.spread_label}" if chart.spread else "")
        ax.set_xlabel(plain(xlabel))
        ax.set_title(plain(chart.title))
        right = max([*values, *(hi for _, hi in chart.spread.values())] if chart.spread else values)
        if chart.target is not None:
            right = max(right, chart.target)
        for bar, label, value in zip(bars, labels, values, strict=True):
            end = max(value, chart.spread.get(label, (value, value))[1])
            ax.annotate(
                f"{value:.3g}",
                (end, bar.get_y() + bar.get_height() / 2),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
            note = chart.notes.get(label)
            if note:
                ax.annotate(
                    plain(note),
                    (1.02, bar.get_y() + bar.get_height() / 2),
                    xycoords=("axes fraction", "data"),
                    va="center",
                    fontsize=8,
                    color="#1e8449" if note.startswith("survives") else _MISSED,
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
        lows = [lo for lo, _ in chart.spread.values()] if chart.spread else []
        left = min([*values, *lows]) if values else 0.0
        if chart.ylabel.startswith("ratio") and left > 0.5:
            # Ratios near 1: from zero, a 2 % difference would not show.
            left = math.floor(left * 0.97 * 20) / 20
            ax.axvline(1.0, color="#999999", linewidth=0.8)
        else:
            left = 0.0
        ax.set_xlim(left, left + (right - left) * 1.15 if right > left else left + 1)
        fig.tight_layout()
        if chart.notes:
            fig.subplots_adjust(right=0.72)
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


def _makers() -> list[tuple[Callable[[str], bool], Callable[[str, dict[str, Any]], list[Chart]]]]:
    from . import failover, memory, overhead, peers, recovery, scaling

    return [
        (lambda key: key.startswith("overhead_"), overhead.charts),
        (lambda key: key in ("peers", "peers_async"), peers.charts),
        (lambda key: key in ("recovery", "blackhole"), recovery.charts),
        (lambda key: key == "scaling", scaling.charts),
        (lambda key: key == "memory", memory.charts),
        (lambda key: key == "failover", failover.charts),
    ]


def redraw(results: Path, directory: Path) -> list[Path]:
    """Every chart of the run whose ``results.json`` is ``results``, drawn again."""
    sections: dict[str, dict[str, Any]] = json.loads(results.read_text())["sections"]
    written = []
    makers = _makers()
    for key, data in sections.items():
        for matches, make in makers:
            if matches(key):
                written += [draw(chart, directory) for chart in make(key, data)]
    return written


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.charts", description=__doc__)
    parser.add_argument("results", type=Path, help="a run's results.json")
    parser.add_argument("out", type=Path, nargs="?", help="where to write (default: beside it)")
    args = parser.parse_args()
    out = args.out or args.results.parent
    for path in redraw(args.results, out):
        print(path)


if __name__ == "__main__":
    main()
