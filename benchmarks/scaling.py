"""Scaling: overhead with 1, 8 and 32 threads each on its own connection.

Each thread owns one raw PyMySQL connection and a resilient connection (default
policies) over that same physical connection, and alternates a raw and a proxied unit
(``SELECT 1`` + fetchall), the first of the pair rotating. A barrier starts every round
on all threads at once; a round's figure per variant is the median over all threads'
samples. The GIL serialises the threads' Python work, so the proxy's few microseconds
of it may weigh more as threads are added: this section shows whether they do.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import pymysql

import resilient_dbapi

from .common import Chart, Context, Section, ratio_spread, summarise

__all__ = ["run", "steps"]

THREADS = (1, 8, 32)
WARM_UP = 100
"""Units of each kind per thread before the first round."""
RAW, PROXIED = "raw PyMySQL", "resilient_dbapi, default policies"


def steps(ctx: Context) -> int:
    """One step per round, per thread count."""
    return len(THREADS) * ctx.rounds


def _per_thread(ctx: Context, n: int) -> int:
    """Units of each kind per thread per round: fewer as threads are added, so that a
    round's total work stays bounded (32 threads x 1000 would take minutes)."""
    per_round = min(ctx.per_round, 200) if ctx.quick else ctx.per_round
    return max(50, min(per_round, per_round * 4 // n))


def _unit(cursor: Any) -> Any:
    execute, fetchall = cursor.execute, cursor.fetchall

    def unit() -> Any:
        execute("SELECT 1")
        return fetchall()

    return unit


class _Worker(threading.Thread):
    """One thread, one physical connection, both variants over it."""

    def __init__(
        self, raw: Any, proxied: Any, rounds: int, units: int, start: threading.Barrier
    ) -> None:
        super().__init__(daemon=True)
        self.raw_unit = _unit(raw.cursor())
        self.proxied_unit = _unit(proxied.cursor())
        self.rounds, self.units, self.start_barrier = rounds, units, start
        self.error: BaseException | None = None
        # Per round: raw samples, proxied samples (ns), and the round's start and end.
        self.samples: list[tuple[list[int], list[int]]] = []
        self.spans: list[tuple[int, int]] = []
        self.round_done = threading.Semaphore(0)

    def run(self) -> None:
        try:
            for _ in range(WARM_UP):
                self.raw_unit()
                self.proxied_unit()
            clock = time.perf_counter_ns
            for _ in range(self.rounds):
                self.start_barrier.wait()
                raw_ns: list[int] = []
                proxied_ns: list[int] = []
                pair = [(self.raw_unit, raw_ns), (self.proxied_unit, proxied_ns)]
                begin = clock()
                for _ in range(self.units):
                    pair.reverse()  # who goes first shifts its timing: alternate
                    for unit, out in pair:
                        t0 = clock()
                        unit()
                        out.append(clock() - t0)
                self.spans.append((begin, clock()))
                self.samples.append((raw_ns, proxied_ns))
                self.round_done.release()
        except BaseException as exc:  # reported by the main thread, which must not hang
            self.error = exc
            self.start_barrier.abort()
            self.round_done.release()


def _measure(ctx: Context, n: int) -> dict[str, Any]:
    """``ctx.rounds`` rounds on ``n`` threads: summary, and throughput in statements/s."""
    units = _per_thread(ctx, n)
    ctx.progress.note(f"scaling: {n} thread(s), {ctx.rounds} rounds x {units} units each")
    raws: list[Any] = []
    proxies: list[Any] = []
    start = threading.Barrier(n)
    workers: list[_Worker] = []
    try:
        for _ in range(n):
            raw = pymysql.connect(**ctx.mysql)
            raws.append(raw)
            proxies.append(resilient_dbapi.connect(lambda raw=raw: raw))
        workers = [
            _Worker(r, p, ctx.rounds, units, start) for r, p in zip(raws, proxies, strict=True)
        ]
        for w in workers:
            w.start()
        per_round: dict[str, list[float]] = {RAW: [], PROXIED: []}
        throughput: list[float] = []
        for r in range(ctx.rounds):
            for w in workers:
                w.round_done.acquire()
            failed = [w.error for w in workers if w.error is not None]
            if failed:
                raise RuntimeError(f"scaling: a worker thread failed: {failed[0]!r}") from failed[0]
            raw_all = [s for w in workers for s in w.samples[r][0]]
            proxied_all = [s for w in workers for s in w.samples[r][1]]
            per_round[RAW].append(statistics.median(raw_all) / 1000.0)
            per_round[PROXIED].append(statistics.median(proxied_all) / 1000.0)
            wall_ns = max(w.spans[r][1] for w in workers) - min(w.spans[r][0] for w in workers)
            throughput.append(2 * n * units / (wall_ns / 1e9))
            ctx.progress.step()
    finally:
        # On a failure, the other threads must leave their connections before they close.
        start.abort()
        for w in workers:
            w.join()
        for proxy in proxies:
            proxy.close()  # closes its raw connection too
        for raw in raws:
            if raw.open:  # only when its proxy was never made
                raw.close()
    summary = summarise(per_round)
    return {
        "threads": n,
        "units_per_thread_per_round": units,
        "raw": summary[RAW],
        "proxied": summary[PROXIED],
        "statements_per_s": round(statistics.median(throughput)),
        "per_round_us": per_round,
        "per_round_statements_per_s": [round(t) for t in throughput],
    }


def run(ctx: Context) -> list[Section]:
    """The three thread counts, one after the other, and one section of results."""
    # Measured in the overhead section: the first proxy made in a process runs ~2 % slower
    # than later ones. A throwaway one keeps that artifact out of the 1-thread figures.
    throwaway = pymysql.connect(**ctx.mysql)
    with resilient_dbapi.connect(lambda: throwaway, policies=[]) as conn:
        conn.cursor().close()
    results = [_measure(ctx, n) for n in THREADS]
    lines = [
        "| threads | units per thread per round | raw median us | proxied median us | ratio | "
        "ratio range over rounds | statements/s (both kinds) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        p = r["proxied"]
        lines.append(
            f"| {r['threads']} | {r['units_per_thread_per_round']} | "
            f"{r['raw']['median_us']:.1f} | {p['median_us']:.1f} | {p['ratio']:.3f} | "
            f"{p['ratio_min']:.3f}-{p['ratio_max']:.3f} | {r['statements_per_s']:,} |"
        )
    markdown = (
        "Each thread has its own PyMySQL connection and a resilient connection (default "
        "policies) over that same physical connection, and alternates a raw and a proxied "
        "`SELECT 1` + fetchall; a barrier starts each round on all threads together. "
        f"{ctx.rounds} rounds; a round's latency is the median over all threads' samples, "
        "the figures the median over rounds, the ratio proxied/raw per round. Statements/s "
        "counts both kinds over the round's wall time (median over rounds).\n\n" + "\n".join(lines)
    )
    data = {"rounds": ctx.rounds, "results": results}
    return [
        Section(
            "scaling",
            "Scaling: 1, 8 and 32 threads, each on its own connection",
            markdown,
            data,
            charts("scaling", data),
        )
    ]


def charts(key: str, data: dict[str, Any]) -> list[Chart]:
    """The section's chart, from its data (see ``python -m benchmarks.charts``)."""

    def label(r: dict[str, Any]) -> str:
        return f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}"

    results = data["results"]
    return [
        Chart(
            filename="scaling_ratio.png",
            title="Default policies vs raw PyMySQL, by thread count",
            values={label(r): r["proxied"]["ratio"] for r in results},
            spread={label(r): ratio_spread(r["proxied"]) for r in results},
        )
    ]
