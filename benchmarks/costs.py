"""Where the proxy's time goes: the concurrent-use guard, the session journal paid at each
reconnect, a cProfile of the hot path (``SELECT 1`` through the default policies), and
each unit's cost without the network (:mod:`benchmarks.in_process`)."""

from __future__ import annotations

import cProfile
import pstats
import statistics
import threading
import time
from typing import Any

import pymysql

import resilient_dbapi

from . import driver_profiles, in_process, sampling
from .common import Context, Section
from .overhead import NAMES

__all__ = ["run", "steps"]

SESSION_SETTINGS = [
    "SET SESSION sql_mode = 'STRICT_TRANS_TABLES'",
    "SET time_zone = '+00:00'",
    "SET NAMES utf8mb4",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION wait_timeout = 600",
]
_PROFILED = 20_000
_TOP = 12


def steps(ctx: Context) -> int:
    return 7


def guard_us(repeat: int = 200_000) -> float:
    """Microseconds for one claim and release of the concurrent-use guard (best of 5)."""
    lock = threading.Lock()
    acquire, release = lock.acquire, lock.release
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(repeat):
            acquire(False)
            release()
        best = min(best, (time.perf_counter_ns() - t0) / repeat / 1000.0)
    return best


def journal_ms(kwargs: dict[str, Any], rounds: int) -> dict[str, float]:
    """Milliseconds to open a connection with an empty journal and with five session
    settings to replay (what each reconnect pays), alternating; medians."""
    plain: list[float] = []
    replayed: list[float] = []
    for _ in range(rounds):
        for settings, out in (([], plain), (SESSION_SETTINGS, replayed)):
            t0 = time.perf_counter()
            resilient_dbapi.connect(pymysql.connect, **kwargs, on_connect=settings).close()
            out.append((time.perf_counter() - t0) * 1000)
    return {
        "connect_ms": round(statistics.median(plain), 2),
        "connect_with_5_settings_ms": round(statistics.median(replayed), 2),
    }


def profile(kwargs: dict[str, Any], count: int = _PROFILED) -> list[dict[str, Any]]:
    """The functions the hot path spends its own time in, over ``count`` proxied
    ``SELECT 1`` + fetchall (cProfile inflates every call alike: read the shares)."""
    conn = resilient_dbapi.connect(pymysql.connect, **kwargs)
    try:
        cur = conn.cursor()
        for _ in range(1000):
            cur.execute("SELECT 1")
            cur.fetchall()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(count):
            cur.execute("SELECT 1")
            cur.fetchall()
        profiler.disable()
    finally:
        conn.close()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_, calls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(path)}:{line}({name})",
                "ours": "resilient_dbapi" in path,
                "calls_per_statement": round(calls / count, 2),
                "us_per_statement": round(tottime / count * 1e6, 3),
                "share": round(tottime / total, 4),
            }
        )
    rows.sort(key=lambda r: r["share"], reverse=True)
    return rows


def _unit_table(units: list[dict[str, Any]], async_units: list[dict[str, Any]]) -> list[str]:
    lines = [
        "**Each unit without the network** (a PyMySQL or aiomysql connection whose queries "
        "are answered in process after a real set-up: the driver's Python and the proxy's, "
        "no round trip; best of 9 timings; the functions are resilient_dbapi's by own time "
        "under cProfile, which slows every call alike, per unit). Against a real server the "
        "same code costs two to four times as much (cold caches after each round trip).",
        "",
        "| driver | unit | raw us | proxied us | the proxy's us | where (calls, profiled us) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for driver, rows in (("PyMySQL", units), ("aiomysql", async_units)):
        for r in rows:
            where = "; ".join(f"`{t}`" for t in r["top"][:4])
            lines.append(
                f"| {driver} | {r['unit']} | {r['raw_us']:.2f} | {r['proxy_us']:.2f} | "
                f"+{r['overhead_us']:.2f} | {where} |"
            )
    return lines


def _short(path: str) -> str:
    for marker in ("resilient_dbapi/", "pymysql/", "lib/python3"):
        if marker in path:
            return path[path.index(marker) :]
    return path


def run(ctx: Context) -> list[Section]:
    ctx.progress.note("costs: concurrent-use guard")
    guard = guard_us()
    ctx.progress.step()
    ctx.progress.note("costs: session journal replay")
    journal = journal_ms(ctx.mysql, 5 if ctx.quick else 15)
    ctx.progress.step()
    ctx.progress.note("costs: cProfile of the hot path")
    rows = profile(ctx.mysql, 5_000 if ctx.quick else _PROFILED)
    ctx.progress.step()
    per_unit = 2_000 if ctx.quick else 20_000
    ctx.progress.note("costs: each unit without the network, PyMySQL")
    units = in_process.measure(ctx.mysql, per_unit)
    ctx.progress.step()
    ctx.progress.note("costs: each unit without the network, aiomysql")
    async_units = in_process.measure_async(ctx.mysql, per_unit)
    ctx.progress.step()
    ctx.progress.note("costs: each unit sampled against the server (py-spy)")
    sampled = sampling.sample_units(ctx.mysql, 0.5 if ctx.quick else 4.0)
    ctx.progress.step()
    by_driver = driver_profiles.measure(ctx, 500 if ctx.quick else 4_000)
    ctx.progress.step()
    ours = sum(r["share"] for r in rows if r["ours"])
    ours_us = sum(r["us_per_statement"] for r in rows if r["ours"])
    lines = [
        f"- Concurrent-use guard (a lock claimed and released per operation): {guard:.3f} us.",
        f"- Session journal, paid once per reconnect: connect {journal['connect_ms']:.1f} ms; "
        f"connect and replay 5 settings {journal['connect_with_5_settings_ms']:.1f} ms.",
        f"- cProfile of `SELECT 1` + fetchall through the default policies: resilient_dbapi's "
        f"own functions hold {ours:.1%} of the profiled time ({ours_us:.2f} us per statement "
        "under the profiler, which slows every call alike). The top functions by own time:",
        "",
        "| function | calls per statement | own us per statement (profiled) | share |",
        "|---|---:|---:|---:|",
    ]
    for r in rows[:_TOP]:
        lines.append(
            f"| `{r['function']}` | {r['calls_per_statement']:g} | "
            f"{r['us_per_statement']:.2f} | {r['share']:.1%} |"
        )
    lines += ["", *_unit_table(units, async_units), "", *sampling.table(sampled)]
    lines += ["", *driver_profiles.table(by_driver, NAMES)]
    return [
        Section(
            key="costs",
            title="Where the time goes: guard, journal, and the hot path's profile",
            markdown="\n".join(lines),
            data={
                "guard_us": guard,
                "journal": journal,
                "profile": rows[:40],
                "in_process": {"pymysql": units, "aiomysql": async_units},
                "sampled": sampled,
                "by_driver": by_driver,
            },
        )
    ]
