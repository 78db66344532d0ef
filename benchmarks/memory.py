"""Memory: RSS growth over one million statements through the proxy (must be flat).

Each run sends ``SELECT 1`` + fetchall through a resilient connection with the default
policies, in blocks of 1000: a fresh cursor per block (applications make them freely) and
one statement per block through ``with conn.cursor()``. The resident set size is read from
``/proc/self/statm`` after a warm-up and then at every twentieth of the run. The sqlite3
run (``:memory:``) has a driver that allocates next to nothing per statement, so it
isolates the proxy's own Python objects from PyMySQL's.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql

import resilient_dbapi

from .common import Chart, Context, Section, Target

__all__ = ["run", "steps"]

SAMPLES = 20
"""RSS samples after the first one, evenly spaced over the run."""
BLOCK = 1000
"""Statements per cursor (one of them through ``with conn.cursor()``)."""
WARM_UP = 10_000
FLAT_KIB = 256
"""A run is flat when its RSS grows by less than this over the second half."""
STATM = Path("/proc/self/statm")


def steps(ctx: Context) -> int:
    """One step per RSS sample, two runs (none where the RSS cannot be read)."""
    return 2 * SAMPLES if STATM.exists() else 0


def _statements(ctx: Context) -> int:
    return ctx.statements


def _rss_kib() -> float:
    """The process's resident set size in KiB (Linux: resident pages * page size)."""
    resident_pages = int(STATM.read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1024


def _block(conn: Any) -> None:
    """One block of :data:`BLOCK` statements over a fresh cursor and a ``with`` cursor."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchall()
    cur = conn.cursor()
    execute, fetchall = cur.execute, cur.fetchall
    for _ in range(BLOCK - 1):
        execute("SELECT 1")
        fetchall()
    cur.close()


def _measure(
    ctx: Context, name: str, connect: Callable[[], Any], statements: int
) -> dict[str, Any]:
    """Run ``statements`` statements over one resilient connection, sampling RSS."""
    ctx.progress.note(f"memory: {name}, {statements:,} statements")
    conn = connect()
    try:
        for _ in range(WARM_UP // BLOCK):  # the allocator's pools and caches settle first
            _block(conn)
        blocks_per_sample = statements // BLOCK // SAMPLES
        # No gc.collect() before a sample: an application does not call it either, so
        # cycles left to the collector would show here as growth, as they would there.
        samples = [{"statements": 0, "rss_kib": _rss_kib()}]
        t0 = time.perf_counter()
        for i in range(1, SAMPLES + 1):
            for _ in range(blocks_per_sample):
                _block(conn)
            samples.append({"statements": i * blocks_per_sample * BLOCK, "rss_kib": _rss_kib()})
            ctx.progress.step()
        seconds = time.perf_counter() - t0
    finally:
        conn.close()
    first, end = samples[0]["rss_kib"], samples[-1]["rss_kib"]
    second_half = samples[SAMPLES // 2 :]
    slope = statistics.linear_regression(
        [s["statements"] / 100_000 for s in second_half], [s["rss_kib"] for s in second_half]
    ).slope
    half_growth = end - second_half[0]["rss_kib"]
    return {
        "statements": samples[-1]["statements"],
        "seconds": round(seconds, 2),
        "us_per_statement": round(seconds / samples[-1]["statements"] * 1e6, 2),
        "first_mib": round(first / 1024, 2),
        "end_mib": round(end / 1024, 2),
        "growth_kib": round(end - first, 1),
        "second_half_growth_kib": round(half_growth, 1),
        "slope_kib_per_100k": round(slope, 2),
        "flat": half_growth < FLAT_KIB,
        "samples": samples,
    }


def run(ctx: Context) -> list[Section]:
    """Both runs (PyMySQL on MariaDB, sqlite3 in memory) and one section of results."""
    title = "Memory: RSS over one million statements"
    if not STATM.exists():
        markdown = "Skipped: no `/proc/self/statm` here (the RSS is read from it; Linux only)."
        return [Section("memory", title, markdown, {"skipped": "no /proc/self/statm"})]
    statements = _statements(ctx)
    runs = {
        "PyMySQL, MariaDB (loopback)": _measure(
            ctx,
            "PyMySQL",
            lambda: resilient_dbapi.connect(pymysql.connect, **ctx.mysql),
            statements,
        ),
        "sqlite3, `:memory:`": _measure(
            ctx, "sqlite3", lambda: resilient_dbapi.connect(sqlite3.connect, ":memory:"), statements
        ),
    }
    lines = [
        "| run | statements | us each | RSS first MiB | RSS end MiB | growth KiB | "
        "growth over 2nd half KiB | slope over 2nd half KiB/100k | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in runs.items():
        verdict = "flat" if r["flat"] else "**growing**"
        lines.append(
            f"| {name} | {r['statements']:,} | {r['us_per_statement']:.1f} | "
            f"{r['first_mib']:.1f} | {r['end_mib']:.1f} | {r['growth_kib']:+.0f} | "
            f"{r['second_half_growth_kib']:+.0f} | {r['slope_kib_per_100k']:+.1f} | {verdict} |"
        )
    markdown = (
        f"`SELECT 1` + fetchall through `resilient_dbapi.connect()` with the default "
        f"policies, a new cursor every {BLOCK} statements (one of them through "
        f"`with conn.cursor()`), after a warm-up of {WARM_UP:,} statements. RSS read from "
        f"`/proc/self/statm` after the warm-up and at every 1/{SAMPLES} of the run; the slope "
        "is a least-squares fit over the samples of the second half.\n\n"
        + "\n".join(lines)
        + f"\n\nCriterion: **flat** when the RSS grows by less than {FLAT_KIB} KiB over the "
        "second half of the run (from its middle sample to its last); the first half is "
        "left out because allocators and caches may still settle there. Overall: "
        + ("flat." if all(r["flat"] for r in runs.values()) else "**growing**.")
    )
    data = {"flat_kib": FLAT_KIB, "block": BLOCK, "warm_up": WARM_UP, "runs": runs}
    targets = [
        Target(
            f"RSS growth over the second half, KiB ({name})", r["second_half_growth_kib"], FLAT_KIB
        )
        for name, r in runs.items()
    ]
    return [Section("memory", title, markdown, data, charts("memory", data), targets)]


def charts(key: str, data: dict[str, Any]) -> list[Chart]:
    """The section's chart, from its data (see ``python -m benchmarks.charts``): the RSS
    along each run (flat lines are the finding; bars of a zero growth showed nothing)."""
    runs = data["runs"]
    return [
        Chart(
            filename="memory_growth.png",
            title="RSS along a million statements (after the warm-up)",
            values={name: r["second_half_growth_kib"] for name, r in runs.items()},
            series={
                f"{name}: {r['second_half_growth_kib']:g} KiB over the second half": [
                    (p["statements"] / 1000, p["rss_kib"] / 1024) for p in r["samples"]
                ]
                for name, r in runs.items()
            },
            xlabel="thousands of statements",
            ylabel="RSS, MiB",
        )
    ]
