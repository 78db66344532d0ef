"""What every benchmark section shares: the run's context, interleaved timing, the
summary of rounds into medians and ratios, Markdown tables, and the progress bar.

Every figure is a median over interleaved rounds; every comparison is a ratio measured
in the same run: within a round the variants take turns unit by unit, in an order
shuffled anew for every unit (a fixed seed: runs repeat), so the machine's and the
server's swings hit all of them alike and no variant always follows the same neighbour.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Chart",
    "Context",
    "Progress",
    "Section",
    "Target",
    "interleaved",
    "interleaved_async",
    "paired_ratio",
    "ratio_table",
    "summarise",
    "verdict",
]

Unit = Callable[[], Any]
AsyncUnit = Callable[[], Awaitable[Any]]


class Progress:
    """One progress bar on stderr for the whole run: each section adds its steps."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()  # otherwise (a CI log) one line per note
        self.total = 0
        self.done = 0
        self.label = ""
        self._started = time.monotonic()

    def expect(self, steps: int) -> None:
        """Announce ``steps`` more steps (sections call this before they start)."""
        self.total += steps

    def step(self, label: str | None = None) -> None:
        self.done += 1
        if label is not None:
            self.label = label
        self._draw()

    def note(self, label: str) -> None:
        self.label = label
        if self.enabled and not self.tty:
            print(f"[{self.done}/{max(self.total, self.done)}] {label}", file=sys.stderr)
        self._draw()

    def _draw(self) -> None:
        if not (self.enabled and self.tty):
            return
        total = max(self.total, self.done, 1)
        width = 30
        filled = self.done * width // total
        elapsed = time.monotonic() - self._started
        line = (
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{total} "
            f"{elapsed:5.0f}s {self.label[:60]:<60}"
        )
        print(line, end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr, flush=True)


@dataclass
class Context:
    """What a section needs: where the servers are, and how long to measure."""

    mysql: dict[str, Any]
    """PyMySQL connect keyword arguments (host, port, user, password, database)."""
    mysql_server: Any | None
    """The throwaway :class:`~resilient_dbapi.testing.MariaDBServer`; None with --dsn
    (sections that must restart the server then skip that part and say so)."""
    postgres: dict[str, Any] | None
    """psycopg connect keyword arguments, or None when no PostgreSQL is at hand."""
    rounds: int
    per_round: int
    quick: bool
    progress: Progress
    statements: int = 1_000_000
    """How many statements the memory run sends."""
    no_postgres: bool = False
    """--no-postgres: no PostgreSQL figures, not even from servers a section starts."""


@dataclass
class Chart:
    """A bar chart: one bar per label (the median), its spread as a whisker, a note
    beside it, and an optional target line; or, with ``series``, one line per label."""

    filename: str  # e.g. "overhead_select1.png"
    title: str
    values: dict[str, float]
    ylabel: str = "ratio to the raw driver"
    target: float | None = None
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per label, the interval the whisker shows (e.g. the rounds' lowest and highest)."""
    spread_label: str = "whiskers: lowest and highest round"
    notes: dict[str, str] = field(default_factory=dict)
    """Per label, a note written at the right (e.g. whether it survives a kill)."""
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """A line chart instead: per label, its (x, y) points; ``xlabel`` names x."""
    xlabel: str = ""


def ratio_spread(figures: dict[str, float]) -> tuple[float, float]:
    """A variant's lowest and highest per-round ratio (its median's, when not kept)."""
    return figures.get("ratio_min", figures["ratio"]), figures.get("ratio_max", figures["ratio"])


@dataclass(frozen=True)
class Target:
    """A published target: ``figure`` must be at most ``limit``."""

    what: str
    figure: float
    limit: float

    @property
    def met(self) -> bool:
        return self.figure <= self.limit


@dataclass
class Section:
    key: str
    """The section's key in the JSON file."""
    title: str
    markdown: str
    """The section's body (tables, and a line per target: met or missed, with figures)."""
    data: Any
    charts: list[Chart] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def summarise(per_round: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Per-round medians (us) of each variant into: the median of them, the median, min
    and max of the per-round ratio to the first variant, and the per-round medians
    themselves (``rounds_us``: two variants compared round by round, see
    :func:`paired_ratio`)."""
    names = list(per_round)
    base = per_round[names[0]]
    results = {}
    for name in names:
        ratios = [v / b for v, b in zip(per_round[name], base, strict=True)]
        median = statistics.median(per_round[name])
        results[name] = {
            "median_us": round(median, 2),
            "ratio": round(statistics.median(ratios), 4),
            "ratio_min": round(min(ratios), 4),
            "ratio_max": round(max(ratios), 4),
            "overhead_us": round(median - statistics.median(base), 2),
            "rounds_us": [round(v, 2) for v in per_round[name]],
        }
    return results


SEED = 20261207
"""The seed of the interleaving's shuffles."""


def paired_ratio(results: dict[str, dict[str, Any]], variant: str, baseline: str) -> float:
    """``variant`` against ``baseline`` (neither the first variant): the median over rounds
    of the ratio of their medians in the same round. Dividing their ratios to the first
    variant instead divides two medians over rounds, which may come from different
    rounds: a round slow for one but not the other moves the figure."""
    pairs = zip(results[variant]["rounds_us"], results[baseline]["rounds_us"], strict=True)
    return round(statistics.median(v / b for v, b in pairs), 4)


def interleaved(
    variants: Sequence[tuple[str, Unit]],
    rounds: int,
    per_round: int,
    progress: Progress | None = None,
    warm_up: int = 100,
) -> dict[str, dict[str, Any]]:
    """Time each variant's unit of work, interleaved unit by unit; the first variant is
    the baseline of the ratios. One progress step per round."""
    for _, unit in variants:
        for _ in range(warm_up):
            unit()
    per_round_medians: dict[str, list[float]] = {name: [] for name, _ in variants}
    clock = time.perf_counter_ns
    shuffle = random.Random(SEED).shuffle
    for _ in range(rounds):
        samples: list[list[int]] = [[] for _ in variants]
        order = list(range(len(variants)))
        for _ in range(per_round):
            # Who goes first, and after whom, shifts a unit's timing (caches, the
            # server's buffers): a rotation kept each variant after the same neighbour.
            shuffle(order)
            for i in order:
                unit = variants[i][1]
                t0 = clock()
                unit()
                samples[i].append(clock() - t0)
        for (name, _), got in zip(variants, samples, strict=True):
            per_round_medians[name].append(statistics.median(got) / 1000.0)
        if progress is not None:
            progress.step()
    return summarise(per_round_medians)


def interleaved_async(
    loop: asyncio.AbstractEventLoop,
    variants: Sequence[tuple[str, AsyncUnit]],
    rounds: int,
    per_round: int,
    progress: Progress | None = None,
    warm_up: int = 100,
) -> dict[str, dict[str, Any]]:
    """:func:`interleaved` for coroutines: each round runs to completion in ``loop``."""

    async def warm() -> None:
        for _, unit in variants:
            for _ in range(warm_up):
                await unit()

    async def one_round() -> list[list[int]]:
        samples: list[list[int]] = [[] for _ in variants]
        order = list(range(len(variants)))
        clock = time.perf_counter_ns
        for _ in range(per_round):
            shuffle(order)
            for i in order:
                unit = variants[i][1]
                t0 = clock()
                await unit()
                samples[i].append(clock() - t0)
        return samples

    shuffle = random.Random(SEED).shuffle
    loop.run_until_complete(warm())
    per_round_medians: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _ in range(rounds):
        for (name, _), got in zip(variants, loop.run_until_complete(one_round()), strict=True):
            per_round_medians[name].append(statistics.median(got) / 1000.0)
        if progress is not None:
            progress.step()
    return summarise(per_round_medians)


def ratio_table(results: dict[str, dict[str, float]], what: str) -> str:
    """A Markdown table of :func:`summarise`'s results; ``what`` heads the first column."""
    lines = [
        f"| {what} | median us | ratio | ratio range over rounds | overhead us |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['median_us']:.1f} | {r['ratio']:.3f} | "
            f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f} | {r['overhead_us']:+.2f} |"
        )
    return "\n".join(lines)


def verdict(figure: float, target: float, what: str) -> str:
    """One line saying whether ``figure`` meets ``target`` (at most)."""
    met = "met" if figure <= target else "**missed**"
    return f"{what}: **{figure:.3f}x** (target: at most {target}x): {met}."
