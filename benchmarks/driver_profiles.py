"""Each server driver's units through the default policies, profiled against the server:
resilient_dbapi's own functions per unit. The in-process measure (:mod:`.in_process`)
answers PyMySQL's and aiomysql's queries without the network; mysqlclient,
mysql-connector and psycopg cannot be answered that way, and this is what the report's
"why" cites for them (and for PyMySQL beside them, for comparison)."""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from typing import Any

import resilient_dbapi

from .common import Context
from .overhead import (
    MYSQL_DRIVERS,
    PSYCOPG,
    PYMYSQL,
    Driver,
    _create_tables,
    _drop_tables,
    _installed,
    _sync_units,
)

__all__ = ["UNITS", "measure", "table"]

UNITS = {
    "select1": "SELECT 1",
    "cursor": "cursor per request",
    "insert": "INSERT",
    "transaction": "transaction",
}
"""The overhead section's workload keys, and the names its targets give them."""
_SHARE = {"select1": 1.0, "cursor": 1.0, "insert": 0.25, "transaction": 0.05}
"""Units profiled per unit of ``count``: about the same time for each."""
_TOP = 4


def _profile(unit: Callable[[], Any], count: int) -> dict[str, Any]:
    for _ in range(min(100, count)):
        unit()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        unit()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    ours = []
    for (path, line, name), (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "resilient_dbapi" in path:
            short = path[path.index("resilient_dbapi") + len("resilient_dbapi/") :]
            ours.append((own, calls, f"{short}:{line}({name})"))
    ours.sort(reverse=True)
    own_total = sum(own for own, _, _ in ours)
    return {
        "profiled_us": round(total / count * 1e6, 2),
        "ours_us": round(own_total / count * 1e6, 2),
        "ours_share": round(own_total / total, 4) if total else 0.0,
        "top": [f"{at} x{n / count:g} {own / count * 1e6:.2f}" for own, n, at in ours[:_TOP]],
    }


def _driver(ctx: Context, driver: Driver, count: int) -> list[dict[str, Any]]:
    raw = driver.connect(ctx)
    try:
        conn = resilient_dbapi.connect(lambda: raw)  # the default policies
        units = _sync_units(conn, conn.cursor())
        rows = []
        for key, name in UNITS.items():
            n = max(10, int(count * _SHARE[key]))
            ctx.progress.note(f"costs: {driver.name}, {name}, profiled against the server")
            rows.append({"unit": name, "units": n, **_profile(units[key], n)})
        return rows
    finally:
        raw.close()


def measure(ctx: Context, count: int) -> dict[str, list[dict[str, Any]]]:
    """Per driver key: per unit, the profiled microseconds per unit, resilient_dbapi's
    own share of them, and its top functions by own time."""
    import pymysql

    results: dict[str, list[dict[str, Any]]] = {}
    admin = pymysql.connect(**{**ctx.mysql, "autocommit": True})
    try:
        _create_tables(admin, postgres=False)
        for driver in (PYMYSQL, *MYSQL_DRIVERS):
            if _installed(driver.module):
                results[driver.key] = _driver(ctx, driver, count)
    finally:
        _drop_tables(admin)
        admin.close()
    if ctx.postgres is not None and _installed(PSYCOPG.module):
        pg = PSYCOPG.connect(ctx)
        try:
            _create_tables(pg, postgres=True)
            results[PSYCOPG.key] = _driver(ctx, PSYCOPG, count)
        finally:
            _drop_tables(pg)
            pg.close()
    return results


def table(results: dict[str, list[dict[str, Any]]], names: dict[str, str]) -> list[str]:
    lines = [
        "**Each driver against the server** (the units of the overhead tables through the "
        "default policies, under cProfile, which slows every call alike: read the shares). "
        "*ours*: resilient_dbapi's functions' own time, per unit; the rest is the driver's "
        "Python and the waits on the socket.",
        "",
        "| driver | unit | profiled us | ours us | ours share | where (calls, profiled us) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for key, rows in results.items():
        for r in rows:
            where = "; ".join(f"`{t}`" for t in r["top"])
            lines.append(
                f"| {names.get(key, key)} | {r['unit']} | {r['profiled_us']:.1f} | "
                f"{r['ours_us']:.2f} | {r['ours_share']:.1%} | {where} |"
            )
    return lines
