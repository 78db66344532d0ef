"""A change's cost, side by side: the proxy as it was at a git revision vs as it is now.

    python -m benchmarks.before_after --before <rev> [--rounds 15] [--per-round 1000]

The package at ``<rev>`` is extracted (``git archive``) and imported under another name,
so both versions wrap the SAME physical connection of each driver in one process, with
default policies, interleaved unit by unit (the raw driver runs alongside, for scale).
Per workload and driver: the median of the per-round ratios now/before, and their range.
Writes ``benchmarks/results/before_after.md`` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import logging
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import resilient_dbapi

from .common import Context, Progress, interleaved, interleaved_async
from .overhead import (
    MYSQL_DRIVERS,
    PSYCOPG,
    PYMYSQL,
    SELECT_ONE,
    WORKLOADS,
    Driver,
    _async_units,
    _create_tables,
    _drop_tables,
    _installed,
    _sync_units,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "results" / "before_after.md"
Results = dict[str, dict[str, dict[str, float]]]  # workload -> variant -> summary
PER_REQUEST = "cursor per request"


def load_before(rev: str, into: Path) -> ModuleType:
    """The package as it was at ``rev``, imported as ``resilient_dbapi_before``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "resilient_dbapi"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "resilient_dbapi").rename(into / "resilient_dbapi_before")
    sys.path.insert(0, str(into))
    return importlib.import_module("resilient_dbapi_before")


def _per_request(conn: Any) -> Callable[[], Any]:
    """What every ORM and pool does per request: a cursor, a statement, its rows, close."""

    def unit() -> Any:
        cur = conn.cursor()
        cur.execute(SELECT_ONE)
        rows = cur.fetchall()
        cur.close()
        return rows

    return unit


def _measure_sync(ctx: Context, before: ModuleType, raw: Any, workloads: list[str]) -> Results:
    variants = []
    for label, package in (("before", before), ("now", resilient_dbapi)):
        package.connect(lambda: raw, policies=[]).cursor()  # the first proxy runs slower
        conn = package.connect(lambda: raw)
        units = _sync_units(conn, conn.cursor())
        units[PER_REQUEST] = _per_request(conn)
        variants.append((label, units))
    units = _sync_units(raw, raw.cursor())
    units[PER_REQUEST] = _per_request(raw)
    variants.append(("raw", units))
    results: Results = {}
    for key in workloads:
        n = max(20, ctx.per_round // _COST.get(key, 1))
        ctx.progress.note(f"before/after: {key}")
        chosen = [(label, by_key[key]) for label, by_key in variants]
        results[key] = interleaved(chosen, ctx.rounds, n, ctx.progress, warm_up=min(100, n))
    return results


def _measure_aiomysql(ctx: Context, before: ModuleType) -> Results:
    import aiomysql

    with asyncio.Runner() as runner:
        kwargs = {**ctx.mysql, "autocommit": True}
        kwargs["db"] = kwargs.pop("database", None)  # aiomysql's name for it
        raw = runner.run(aiomysql.connect(**kwargs))

        async def variants() -> list[tuple[str, dict[str, Any]]]:
            async def same() -> Any:
                return raw

            made = []
            for label, package in (("before", before.aio), ("now", resilient_dbapi.aio)):
                await (await package.connect(same, policies=[])).cursor()
                conn = await package.connect(same)
                made.append((label, _async_units(conn, await conn.cursor())))
            made.append(("raw", _async_units(raw, await raw.cursor())))
            return made

        try:
            made = runner.run(variants())
            results: Results = {}
            for w in WORKLOADS:
                n = max(20, ctx.per_round // w.cost)
                ctx.progress.note(f"before/after: aiomysql {w.key}")
                chosen = [(label, by_key[w.key]) for label, by_key in made]
                results[w.key] = interleaved_async(
                    runner.get_loop(), chosen, ctx.rounds, n, ctx.progress, warm_up=min(100, n)
                )
            return results
        finally:
            runner.run(raw.ensure_closed())


_COST = {w.key: w.cost for w in WORKLOADS} | {PER_REQUEST: 1}


def _table(name: str, results: Results) -> str:
    lines = [
        f"### {name}",
        "",
        "| workload | before us | now us | now/before | range over rounds | raw us |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, r in results.items():
        now = r["now"]
        lines.append(
            f"| {key} | {r['before']['median_us']:.1f} | {now['median_us']:.1f} | "
            f"{now['ratio']:.3f} | {now['ratio_min']:.3f}-{now['ratio_max']:.3f} | "
            f"{r['raw']['median_us']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.before_after", description=__doc__)
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.per_round < 20:
        parser.error("--rounds must be >= 1 and --per-round >= 20")
    logging.getLogger("resilient_dbapi").setLevel(logging.ERROR)
    from resilient_dbapi.testing import MariaDBServer, PostgresServer, ServerUnavailable

    from .__main__ import _with_database

    started = time.monotonic()
    sections: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, MariaDBServer() as mariadb:
        before = load_before(args.before, Path(tmp))
        postgres = None
        if not args.no_postgres:
            try:
                postgres = PostgresServer().start()
            except (ServerUnavailable, OSError) as exc:
                print(f"no PostgreSQL for psycopg: {exc}", file=sys.stderr)
        try:
            ctx = Context(
                mysql=_with_database(mariadb.connect_kwargs()),
                mysql_server=mariadb,
                postgres=None if postgres is None else postgres.connect_kwargs(),
                rounds=args.rounds,
                per_round=args.per_round,
                quick=False,
                progress=Progress(True),
            )
            drivers: list[Driver] = [PYMYSQL, *MYSQL_DRIVERS]
            if ctx.postgres is not None:
                drivers.append(PSYCOPG)
            drivers = [d for d in drivers if _installed(d.module)]
            sqlite = 2
            ctx.progress.expect(
                ctx.rounds * ((len(WORKLOADS) + 1) * len(drivers) + len(WORKLOADS) + sqlite)
            )
            workloads = [w.key for w in WORKLOADS] + [PER_REQUEST]
            for driver in drivers:
                raw = driver.connect(ctx)
                try:
                    _create_tables(raw, driver is PSYCOPG)
                    results = _measure_sync(ctx, before, raw, workloads)
                    _drop_tables(raw)
                finally:
                    raw.close()
                sections.append(_table(driver.name, results))
            if _installed("aiomysql"):
                raw = PYMYSQL.connect(ctx)
                _create_tables(raw, False)
                try:
                    sections.append(_table("aiomysql", _measure_aiomysql(ctx, before)))
                finally:
                    _drop_tables(raw)
                    raw.close()
            memory = sqlite3.connect(":memory:", check_same_thread=False)
            measured = _measure_sync(ctx, before, memory, ["select1", PER_REQUEST])
            sections.append(_table("sqlite3 (in memory)", measured))
            ctx.progress.close()
        finally:
            if postgres is not None:
                postgres.remove()
    report = (
        f"# Before and after: `{args.before}` vs the working tree\n\n"
        f"Default policies; {args.rounds} rounds x {args.per_round} `SELECT 1` units "
        f"(fewer for the costlier workloads); {(time.monotonic() - started) / 60:.1f} min. "
        "`now/before` is the median of the per-round ratios of medians: below 1 is faster.\n\n"
        + "\n\n".join(sections)
        + "\n"
    )
    args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
