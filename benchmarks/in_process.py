"""The proxy's own cost per unit of work, without the network.

A real PyMySQL (or aiomysql) connection is opened and set up against the server, then
its ``query()``, ``commit()``, ``rollback()`` and ``begin()`` are answered in process:
the driver still builds its cursor, escapes the parameters and reads a result, but no
byte leaves. Raw and proxied units then differ only by the proxy's Python, measured to
a tenth of a microsecond where a round trip's noise (tens of microseconds on a shared
machine) hides it; a profile per unit says which of its functions the time goes to.

Against a real server the same code costs two to four times as much: after each round
trip the interpreter's caches are cold. These figures are the floor the steady-state
ratios are built on, and the yardstick for cutting the hot path.
"""

from __future__ import annotations

import asyncio
import cProfile
import itertools
import pstats
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pymysql
from pymysql.constants import SERVER_STATUS

import resilient_dbapi
from resilient_dbapi import adapters, aio

__all__ = ["measure", "measure_async"]

_IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS
_AUTOCOMMIT = SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT
SELECT_ROW = "SELECT id, uid, v FROM in_process_rows WHERE id = %s"
UPDATE_ROW = "UPDATE in_process_rows SET v = v + 1 WHERE id = %s"
INSERT_ROW = "INSERT INTO in_process_ins (uid, v) VALUES (%s, %s)"
UNITS = ("SELECT 1", "cursor per request", "point select", "INSERT", "transaction")
# Units per timing: a transaction is ten statements.
_COUNT = {"transaction": 1000}
_REPEATS = 9
_TOP = 6


class _Result:
    """What the driver reads after a query: one row for a SELECT, an OK otherwise."""

    def __init__(self, select: bool) -> None:
        self.affected_rows = 1
        self.insert_id = 0
        self.server_status = 0
        self.warning_count = 0
        self.message = None if select else b""
        self.field_count = 1 if select else 0
        self.description = (("1", 8, None, 1, 1, 0, False),) if select else None
        self.rows = ((1,),) if select else None
        self.has_next = False
        self.unbuffered_active = False


def _reply(raw: Any, sql: Any) -> int:
    """The server's side of one query, as far as the driver and the proxy read it: the
    transaction flag its OK packets carry, and a result."""
    text = (sql.decode() if isinstance(sql, bytes) else sql).lstrip().upper()
    flags = raw.server_status
    if text.startswith(("BEGIN", "START")):
        flags |= _IN_TRANS
    elif text.startswith(("COMMIT", "ROLLBACK")):
        flags &= ~_IN_TRANS
    elif not flags & _AUTOCOMMIT and not text.startswith("SELECT"):
        flags |= _IN_TRANS
    raw.server_status = flags
    raw._result = _Result(text.startswith("SELECT"))
    raw._affected_rows = 1
    return 1


def _answer_in_process(raw: Any, is_async: bool) -> None:
    def end() -> None:
        raw.server_status &= ~_IN_TRANS

    def begin() -> None:
        raw.server_status |= _IN_TRANS

    if is_async:

        async def query(sql: Any, unbuffered: bool = False) -> int:
            return _reply(raw, sql)

        async def end_async() -> None:
            end()

        async def begin_async() -> None:
            begin()

        raw.query, raw.commit, raw.rollback, raw.begin = query, end_async, end_async, begin_async
    else:
        raw.query = lambda sql, unbuffered=False: _reply(raw, sql)
        raw.commit, raw.rollback, raw.begin = end, end, begin


def _sync_units(conn: Any) -> dict[str, Callable[[], Any]]:
    cur = conn.cursor()
    ids = itertools.cycle(range(1, 101))

    def select_one() -> Any:
        cur.execute("SELECT 1")
        return cur.fetchall()

    def cursor_per_request() -> Any:
        c = conn.cursor()
        c.execute("SELECT 1")
        rows = c.fetchall()
        c.close()
        return rows

    def point_select() -> Any:
        cur.execute(SELECT_ROW, (next(ids),))
        return cur.fetchall()

    def insert() -> Any:
        n = next(ids)
        return cur.execute(INSERT_ROW, (n, n))

    def transaction() -> None:
        cur.execute("BEGIN")
        for _ in range(4):
            cur.execute(SELECT_ROW, (next(ids),))
            cur.fetchall()
        for _ in range(4):
            cur.execute(UPDATE_ROW, (next(ids),))
        conn.commit()

    units = (select_one, cursor_per_request, point_select, insert, transaction)
    return dict(zip(UNITS, units, strict=True))


async def _async_units(conn: Any) -> dict[str, Callable[[], Awaitable[Any]]]:
    cur = await conn.cursor()
    ids = itertools.cycle(range(1, 101))

    async def select_one() -> Any:
        await cur.execute("SELECT 1")
        return await cur.fetchall()

    async def cursor_per_request() -> Any:
        c = await conn.cursor()
        await c.execute("SELECT 1")
        rows = await c.fetchall()
        await c.close()
        return rows

    async def point_select() -> Any:
        await cur.execute(SELECT_ROW, (next(ids),))
        return await cur.fetchall()

    async def insert() -> Any:
        n = next(ids)
        return await cur.execute(INSERT_ROW, (n, n))

    async def transaction() -> None:
        await cur.execute("BEGIN")
        for _ in range(4):
            await cur.execute(SELECT_ROW, (next(ids),))
            await cur.fetchall()
        for _ in range(4):
            await cur.execute(UPDATE_ROW, (next(ids),))
        await conn.commit()

    units = (select_one, cursor_per_request, point_select, insert, transaction)
    return dict(zip(UNITS, units, strict=True))


def _tables(kwargs: dict[str, Any]) -> None:
    conn = pymysql.connect(**{**kwargs, "autocommit": True})
    try:
        cur = conn.cursor()
        cur.execute("DROP TABLE IF EXISTS in_process_rows, in_process_ins")
        cur.execute("CREATE TABLE in_process_rows (id INT PRIMARY KEY, uid INT, v INT)")
        cur.execute(
            "CREATE TABLE in_process_ins (id BIGINT AUTO_INCREMENT PRIMARY KEY, uid INT, v INT)"
        )
        cur.executemany(
            "INSERT INTO in_process_rows VALUES (%s, %s, 0)", [(i, i) for i in range(1, 101)]
        )
    finally:
        conn.close()


def _drop(kwargs: dict[str, Any]) -> None:
    conn = pymysql.connect(**{**kwargs, "autocommit": True})
    try:
        conn.cursor().execute("DROP TABLE IF EXISTS in_process_rows, in_process_ins")
    finally:
        conn.close()


def _row(name: str, raw_us: float, proxy_us: float, profile: list[str]) -> dict[str, Any]:
    return {
        "unit": name,
        "raw_us": round(raw_us, 2),
        "proxy_us": round(proxy_us, 2),
        "overhead_us": round(proxy_us - raw_us, 2),
        "top": profile,
    }


def _top(profiler: cProfile.Profile, count: int) -> list[str]:
    """resilient_dbapi's functions by own time under the profiler, per unit (the
    profiler slows every call alike: read the order and the shares)."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    ours = [
        (tottime / count * 1e6, calls / count, f"{path.split('resilient_dbapi/')[-1]}:{fn}")
        for (path, _, fn), (_, calls, tottime, _, _) in stats.items()
        if "resilient_dbapi" in path
    ]
    ours.sort(reverse=True)
    return [f"{name} x{calls:g} {us:.2f}" for us, calls, name in ours[:_TOP]]


def measure(kwargs: dict[str, Any], per_unit: int) -> list[dict[str, Any]]:
    """Each unit over PyMySQL answered in process: best of several timings, raw and
    through the default policies over the same connection, and the proxy's profile."""
    _tables(kwargs)
    try:
        settings = {**kwargs, "autocommit": True}
        raw = pymysql.connect(**adapters.connect_kwargs(pymysql.connect, settings))
        conn = resilient_dbapi.connect(lambda: raw)
        proxied = _sync_units(conn)
        for unit in proxied.values():
            unit()  # the server's real answers, once: what the proxy learns of its tables
        _answer_in_process(raw, is_async=False)
        direct = _sync_units(raw)
        rows = []
        for name in UNITS:
            count = _COUNT.get(name, per_unit)
            best = {"raw": float("inf"), "proxy": float("inf")}
            for _ in range(_REPEATS):
                for side, unit in (("raw", direct[name]), ("proxy", proxied[name])):
                    started = time.perf_counter()
                    for _ in range(count):
                        unit()
                    best[side] = min(best[side], (time.perf_counter() - started) / count * 1e6)
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(count):
                proxied[name]()
            profiler.disable()
            rows.append(_row(name, best["raw"], best["proxy"], _top(profiler, count)))
        conn.close()
        return rows
    finally:
        _drop(kwargs)


def measure_async(kwargs: dict[str, Any], per_unit: int) -> list[dict[str, Any]]:
    """:func:`measure` for aiomysql and the asyncio proxy."""
    import aiomysql

    _tables(kwargs)
    settings = {k: v for k, v in kwargs.items() if k != "database"}
    settings.update(db=kwargs.get("database"), autocommit=True)

    async def main() -> list[dict[str, Any]]:
        raw = await aiomysql.connect(**adapters.connect_kwargs(aiomysql.connect, settings))

        async def same() -> Any:
            return raw

        conn = await aio.connect(same)
        proxied = await _async_units(conn)
        for unit in proxied.values():
            await unit()
        _answer_in_process(raw, is_async=True)
        direct = await _async_units(raw)
        rows = []
        for name in UNITS:
            count = _COUNT.get(name, per_unit)
            best = {"raw": float("inf"), "proxy": float("inf")}
            for _ in range(_REPEATS):
                for side, unit in (("raw", direct[name]), ("proxy", proxied[name])):
                    started = time.perf_counter()
                    for _ in range(count):
                        await unit()
                    best[side] = min(best[side], (time.perf_counter() - started) / count * 1e6)
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(count):
                await proxied[name]()
            profiler.disable()
            rows.append(_row(name, best["raw"], best["proxy"], _top(profiler, count)))
        conn.close()
        raw.close()
        return rows

    try:
        return asyncio.run(main())
    finally:
        _drop(kwargs)
