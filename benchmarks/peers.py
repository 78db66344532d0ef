"""The peers, in the same run, doing the same protective job.

Each variant does what an application does per request: get a usable connection (a pool
checkout, or the one persistent connection), open a cursor, run ``SELECT 1`` and fetch,
give the connection back. The sync variants are timed interleaved against raw PyMySQL on
one persistent connection (no protection at all), the asyncio ones against raw aiomysql.

A live check makes "the same protective job" honest: for each variant, on fresh objects,
a request reads ``CONNECTION_ID()``, an admin connection kills that connection, and the
next request runs 0.6 s later (past resilient_dbapi's ``skip_recent`` window; in asyncio
the event loop runs meanwhile) or at once (in asyncio, before the loop has run again).
Both outcomes go next to the ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiomysql
import pymysql
import sqlalchemy
from dbutils.pooled_db import PooledDB  # type: ignore[import-untyped]
from dbutils.steady_db import connect as steady_connect  # type: ignore[import-untyped]
from sqlalchemy.pool import QueuePool

import resilient_dbapi
from resilient_dbapi import aio

from .common import Chart, Context, Section, interleaved, interleaved_async, ratio_spread

__all__ = ["run", "steps"]

TITLES = {
    "peers": "The peers: the same protective job (`SELECT 1` per request)",
    "peers_async": "The asyncio peers: the same protective job (`SELECT 1` per request)",
}
BASELINES = {
    "peers": "the unprotected raw driver (PyMySQL)",
    "peers_async": "the unprotected raw driver (aiomysql)",
}
IDLE = 0.6  # past PingOnCheckout's skip_recent (0.5 s): the socket check is made
KILL_WAIT = 5.0  # at most this long for a killed id to leave the processlist

Rows = Any
Close = Callable[[], None]
AsyncClose = Callable[[], Awaitable[None]]
Opened = tuple[Callable[[str], Rows], Close]
"""A variant's request (statement in, rows out) and how to close what it opened."""
AsyncOpened = tuple[Callable[[str], Awaitable[Rows]], AsyncClose]
OpenedT = TypeVar("OpenedT")


@dataclass(frozen=True)
class Variant(Generic[OpenedT]):
    name: str
    open: Callable[[], OpenedT]
    """Fresh objects each call: the timing and the kill checks never share any."""
    ours: bool = False
    """resilient_dbapi (compared with the peers in the closing sentence)."""


def steps(ctx: Context) -> int:
    """One progress step per measured round: the sync table, then the asyncio one."""
    return 2 * ctx.rounds


def run(ctx: Context) -> list[Section]:
    """Time the sync and the asyncio peers, and check which survive a killed connection."""
    return [_sync_section(ctx), _async_section(ctx)]


# -- sync -----------------------------------------------------------------------------------


def _select(conn: Any, sql: str) -> Rows:
    """One request's work on a connection: a new cursor, the statement, all rows."""
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetchall()
    finally:
        cur.close()


def _persistent(connect: Callable[[], Any], ping: bool = False) -> Opened:
    conn = connect()

    def request(sql: str) -> Rows:
        if ping:
            # The classic fix, ping(reconnect=True), spelled out: PyMySQL 2 deprecates the
            # flag (its default turned False) and says to connect again instead.
            try:
                conn.ping(False)
            except pymysql.err.Error:
                conn.connect()
        return _select(conn, sql)

    return request, conn.close


def _queue_pool(creator: Callable[[], Any], pre_ping: bool) -> Opened:
    # A bare pool has no dialect to ping with; an unconnected engine's dialect is the one
    # create_engine(..., pool_pre_ping=True) would use. The pool keeps its default reset
    # on return (a ROLLBACK), as an Engine's connection sends one at close.
    dialect = sqlalchemy.create_engine("mysql+pymysql://").dialect
    pool = QueuePool(creator, pool_size=1, max_overflow=0, pre_ping=pre_ping, dialect=dialect)

    def request(sql: str) -> Rows:
        conn = pool.connect()
        try:
            return _select(conn, sql)
        finally:
            conn.close()

    return request, pool.dispose


def _pooled_db(kw: dict[str, Any]) -> Opened:
    pool = PooledDB(pymysql, maxconnections=1, ping=1, **kw)

    def request(sql: str) -> Rows:
        conn = pool.connection()  # ping=1: pinged here, at checkout
        try:
            return _select(conn, sql)
        finally:
            conn.close()

    return request, pool.close


def _sync_variants(kw: dict[str, Any]) -> list[Variant[Opened]]:
    def raw() -> Any:
        return pymysql.connect(**kw)

    return [
        Variant("raw PyMySQL, one connection (unprotected)", lambda: _persistent(raw)),
        Variant(
            "resilient_dbapi, default policies, one connection",
            lambda: _persistent(lambda: resilient_dbapi.connect(pymysql.connect, **kw)),
            ours=True,
        ),
        Variant("PyMySQL `ping()` before each request", lambda: _persistent(raw, ping=True)),
        Variant("SQLAlchemy QueuePool", lambda: _queue_pool(raw, pre_ping=False)),
        Variant("SQLAlchemy QueuePool, `pre_ping`", lambda: _queue_pool(raw, pre_ping=True)),
        Variant(
            "SQLAlchemy QueuePool over `resilient_dbapi.creator`",
            lambda: _queue_pool(resilient_dbapi.creator(pymysql.connect, **kw), pre_ping=False),
            ours=True,
        ),
        # ping=1 pings only when a pool asks (_ping_check()): a lone SteadyDB connection
        # never pings; it recovers by sending the failed statement again.
        Variant(
            "DBUtils SteadyDB, `ping=1`",
            lambda: _persistent(lambda: steady_connect(pymysql, ping=1, **kw)),
        ),
        Variant("DBUtils PooledDB, `ping=1`", lambda: _pooled_db(kw)),
    ]


def _sync_section(ctx: Context) -> Section:
    variants = _sync_variants(ctx.mysql)
    with _closing(v.open() for v in variants) as opened:
        ctx.progress.note("peers: timing the sync variants")
        results = interleaved(
            [(v.name, _bind(request)) for v, (request, _) in zip(variants, opened, strict=True)],
            ctx.rounds,
            ctx.per_round,
            ctx.progress,
        )
    ctx.progress.note("peers: killing the sync variants' connections")
    with _admin(ctx) as admin, _quiet_logs():
        idle = _survives_sync(variants, admin, IDLE)
        at_once = _survives_sync(variants, admin, 0.0)
    return _section(
        "peers",
        TITLES["peers"],
        BASELINES["peers"],
        "QueuePool's reset on return sends a ROLLBACK; a lone SteadyDB connection never "
        "pings (`ping=1` pings when a pool asks) and survives by sending the failed "
        "statement again",
        variants,
        results,
        idle,
        at_once,
        ctx,
    )


def _bind(request: Callable[[str], Rows]) -> Callable[[], Rows]:
    def unit() -> Rows:
        return request("SELECT 1")

    return unit


@contextlib.contextmanager
def _closing(opening: Iterator[Opened]) -> Iterator[list[Opened]]:
    """Open each variant's objects in turn; close all that opened, whatever happens."""
    opened: list[Opened] = []
    try:
        for item in opening:
            opened.append(item)
        yield opened
    finally:
        for _, close in reversed(opened):
            with contextlib.suppress(Exception):  # a killed connection may refuse a goodbye
                close()


def _survives_sync(variants: Sequence[Variant[Opened]], admin: Any, pause: float) -> list[str]:
    """Each variant's outcome for a request after its connection was killed ``pause`` s
    earlier. With a pause the variants are killed together and wait once."""
    groups = [list(variants)] if pause else [[v] for v in variants]
    outcomes: list[str] = []
    for group in groups:
        with _closing(v.open() for v in group) as opened:
            ids = [request("SELECT CONNECTION_ID()")[0][0] for request, _ in opened]
            for conn_id in ids:
                _kill(admin, conn_id)
            if pause:
                time.sleep(pause)
            for request, _ in opened:
                outcomes.append(_attempt(request))
    return outcomes


def _attempt(request: Callable[[str], Rows]) -> str:
    try:
        request("SELECT 1")
    except Exception as exc:
        return _failed(exc)
    return "yes"


# -- asyncio --------------------------------------------------------------------------------


async def _aselect(conn: Any, sql: str) -> Rows:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        return await cur.fetchall()


async def _apersistent(connect: Callable[[], Awaitable[Any]], ping: bool = False) -> AsyncOpened:
    conn = await connect()

    async def request(sql: str) -> Rows:
        if ping:
            await conn.ping()  # reconnect=True, aiomysql's default
        return await _aselect(conn, sql)

    async def close() -> None:
        conn.close()

    return request, close


async def _apool(kw: dict[str, Any]) -> AsyncOpened:
    pool = await aiomysql.create_pool(minsize=1, maxsize=1, pool_recycle=3600, **kw)

    async def request(sql: str) -> Rows:
        conn = await pool.acquire()
        try:
            return await _aselect(conn, sql)
        finally:
            await pool.release(conn)

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    return request, close


def _async_variants(kw: dict[str, Any]) -> list[Variant[Awaitable[AsyncOpened]]]:
    akw = {k: v for k, v in kw.items() if k != "database"}
    if kw.get("database") is not None:
        akw["db"] = kw["database"]  # aiomysql's spelling

    def raw() -> Any:  # aiomysql is untyped: an awaitable connection
        return aiomysql.connect(**akw)

    return [
        Variant("raw aiomysql, one connection (unprotected)", lambda: _apersistent(raw)),
        Variant(
            "resilient_dbapi.aio, default policies, one connection",
            lambda: _apersistent(lambda: aio.connect(aiomysql.connect, **akw)),
            ours=True,
        ),
        Variant("aiomysql `ping()` before each request", lambda: _apersistent(raw, ping=True)),
        Variant("aiomysql pool, `pool_recycle=3600`", lambda: _apool(akw)),
    ]


def _async_section(ctx: Context) -> Section:
    variants = _async_variants(ctx.mysql)
    loop = asyncio.new_event_loop()
    try:
        with _aclosing(loop, [v.open for v in variants]) as opened:
            ctx.progress.note("peers: timing the asyncio variants")
            results = interleaved_async(
                loop,
                [(v.name, _abind(r)) for v, (r, _) in zip(variants, opened, strict=True)],
                ctx.rounds,
                ctx.per_round,
                ctx.progress,
            )
        ctx.progress.note("peers: killing the asyncio variants' connections")
        with _admin(ctx) as admin, _quiet_logs():
            idle = _survives_async(loop, variants, admin, IDLE)
            at_once = _survives_async(loop, variants, admin, 0.0)
    finally:
        loop.run_until_complete(asyncio.sleep(0))  # let closed transports finish
        loop.close()
    return _section(
        "peers_async",
        TITLES["peers_async"],
        BASELINES["peers_async"],
        "aiomysql's pool pings nothing: at acquire it drops a connection whose reader the "
        "event loop has seen at EOF",
        variants,
        results,
        idle,
        at_once,
        ctx,
    )


def _abind(request: Callable[[str], Awaitable[Rows]]) -> Callable[[], Awaitable[Rows]]:
    def unit() -> Awaitable[Rows]:
        return request("SELECT 1")

    return unit


@contextlib.contextmanager
def _aclosing(
    loop: asyncio.AbstractEventLoop, openers: Sequence[Callable[[], Awaitable[AsyncOpened]]]
) -> Iterator[list[AsyncOpened]]:
    """:func:`_closing` for the asyncio variants, run in ``loop``."""
    opened: list[AsyncOpened] = []
    try:
        for opener in openers:
            opened.append(loop.run_until_complete(opener()))
        yield opened
    finally:
        for _, close in reversed(opened):
            with contextlib.suppress(Exception):
                loop.run_until_complete(close())


def _survives_async(
    loop: asyncio.AbstractEventLoop,
    variants: Sequence[Variant[Awaitable[AsyncOpened]]],
    admin: Any,
    pause: float,
) -> list[str]:
    """:func:`_survives_sync` in ``loop``. The kill happens while the loop is stopped; the
    pause runs the loop, so it may read the server's goodbye (EOF) before the request."""
    groups = [list(variants)] if pause else [[v] for v in variants]
    outcomes: list[str] = []
    for group in groups:
        with _aclosing(loop, [v.open for v in group]) as opened:
            ids = [
                loop.run_until_complete(request("SELECT CONNECTION_ID()"))[0][0]
                for request, _ in opened
            ]
            for conn_id in ids:
                _kill(admin, conn_id)
            if pause:  # "at once" must not run the loop: even sleep(0) would read the EOF
                loop.run_until_complete(asyncio.sleep(pause))
            for request, _ in opened:
                try:
                    loop.run_until_complete(request("SELECT 1"))
                except Exception as exc:
                    outcomes.append(_failed(exc))
                else:
                    outcomes.append("yes")
    return outcomes


# -- shared ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _admin(ctx: Context) -> Iterator[Any]:
    server = ctx.mysql_server
    if server is not None and hasattr(server, "admin"):
        conn = server.admin()
    else:
        conn = pymysql.connect(**{**ctx.mysql, "autocommit": True, "connect_timeout": 5})
    try:
        yield conn
    finally:
        conn.close()


def _kill(admin: Any, conn_id: int) -> None:
    """Kill a connection and wait until the server has let it go (at most KILL_WAIT s)."""
    with admin.cursor() as cur:
        cur.execute("KILL CONNECTION %s", (int(conn_id),))
        deadline = time.monotonic() + KILL_WAIT
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE id = %s",
                (int(conn_id),),
            )
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.01)


def _failed(exc: BaseException) -> str:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return f"no ({type(exc).__name__}{'' if code is None else f' {code}'})"


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The kill checks make SQLAlchemy log a failed reset on return and resilient_dbapi
    log its reconnects: expected (the outcome is in the table), so keep them off the
    progress bar."""
    loggers = [logging.getLogger(name) for name in ("sqlalchemy.pool", "resilient_dbapi")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _section(
    key: str,
    title: str,
    baseline: str,
    remark: str,
    variants: Sequence[Variant[Any]],
    results: dict[str, dict[str, float]],
    idle: list[str],
    at_once: list[str],
    ctx: Context,
) -> Section:
    lines = [
        f"| variant | median us | ratio to {baseline} | survives kill (idle {IDLE} s) "
        "| survives kill (at once) |",
        "|---|---:|---:|---|---|",
    ]
    survival: dict[str, dict[str, str]] = {}
    for v, a, b in zip(variants, idle, at_once, strict=True):
        r = results[v.name]
        name = f"**{v.name}**" if v.ours else v.name
        lines.append(f"| {name} | {r['median_us']:.1f} | {r['ratio']:.3f} | {a} | {b} |")
        survival[v.name] = {"idle": a, "at_once": b}
    peers = [
        f"{v.name} {results[v.name]['ratio']:.2f}x"
        for i, (v, a) in enumerate(zip(variants, idle, strict=True))
        if i and not v.ours and a == "yes"
    ]
    ours = ", ".join(f"{v.name} {results[v.name]['ratio']:.2f}x" for v in variants if v.ours)
    sentence = (
        f"Peers that survive the idle kill cost {'; '.join(peers)}; against them, {ours}."
        if peers
        else f"No peer survives the idle kill; {ours}."
    )
    how = (
        f"{ctx.rounds} rounds x {ctx.per_round} requests, interleaved; a request gets a "
        "connection, opens a cursor, runs `SELECT 1` + `fetchall()` and gives the connection "
        f"back ({remark}). Survives kill: a request's connection is killed "
        f"(`KILL CONNECTION`), the next request runs {IDLE} s later or at once."
    )
    return Section(
        key=key,
        title=title,
        markdown="\n".join(lines) + f"\n\n{sentence}\n\n{how}\n",
        data={
            "rounds": ctx.rounds,
            "per_round": ctx.per_round,
            "results": results,
            "survives_kill": survival,
        },
        charts=charts(key, {"results": results, "survives_kill": survival}),
    )


def _survival_note(survives: dict[str, str]) -> str:
    failed = [
        when
        for when, said in (("idle", survives["idle"]), ("at once", survives["at_once"]))
        if not said.startswith("yes")
    ]
    if not failed:
        return "survives the kill (idle and at once)"
    return f"fails at the kill ({' and '.join(failed)})"


def charts(key: str, data: dict[str, Any]) -> list[Chart]:
    """The section's chart, from its data (see ``python -m benchmarks.charts``): the cost
    of each variant, and whether it survives the kill, which is the point."""
    results = data["results"]
    survival = data.get("survives_kill", {})
    return [
        Chart(
            filename=f"{key}.png",
            title=TITLES[key],
            values={name: r["ratio"] for name, r in results.items()},
            spread={name: ratio_spread(r) for name, r in results.items()},
            notes={name: _survival_note(said) for name, said in survival.items()},
            ylabel=f"ratio to {BASELINES[key]}",
        )
    ]
