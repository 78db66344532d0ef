"""SQLAlchemy from a URL alone: ``mysql+resilient_<driver>://...?policies=...`` finds
resilient_dbapi's dialects through their entry points, and a pooled connection the
server killed while idle serves the next statement. The same scenario with SQLAlchemy's
own dialect for the driver fails."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import resilient_dbapi
from resilient_dbapi import aio

from .conftest import kill
from .drivers import postgres_database
from .test_aio import run

pytestmark = pytest.mark.server


def _url(scheme: str, db: dict[str, Any], query: str = "") -> str:
    url = f"{scheme}://{db['user']}:{db['password']}@{db['host']}:{db['port']}/{db['database']}"
    return f"{url}?{query}" if query else url


def test_the_dialects_are_registered_as_entry_points() -> None:
    names = {e.name for e in importlib.metadata.entry_points(group="sqlalchemy.dialects")}
    assert {
        "mysql.resilient_pymysql",
        "mysql.resilient_mysqldb",
        "mysql.resilient_aiomysql",
        "postgresql.resilient_psycopg",
    } <= names


def _killed_while_pooled(server: Any, url: str, pre_ping: bool = False) -> Any:
    """One pooled connection; the server kills it while it idles in the pool; the next
    checkout runs a statement on it."""
    engine = sqlalchemy.create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=pre_ping)
    try:
        with engine.connect() as conn:
            thread_id = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            driver_connection = conn.connection.dbapi_connection
        kill(server, int(thread_id))
        with engine.connect() as conn:
            conn.exec_driver_sql("INSERT INTO t (uid) VALUES ('after the kill')")
            conn.commit()
            return driver_connection, conn.exec_driver_sql("SELECT COUNT(*) FROM t").scalar()
    finally:
        engine.dispose()


@pytest.mark.parametrize("pre_ping", [False, True], ids=["", "pool_pre_ping"])
@pytest.mark.parametrize("driver", ["pymysql", "mysqldb", "mysqlconnector"])
def test_a_url_alone_makes_the_pool_survive_a_kill(
    server: Any, db: dict[str, Any], driver: str, pre_ping: bool
) -> None:
    """With SQLAlchemy's own ``pool_pre_ping`` on top too: its ping goes through the
    proxy, which replaces the dead connection; the pool sees a live one."""
    raw, count = _killed_while_pooled(
        server, _url(f"mysql+resilient_{driver}", db, "policies=web"), pre_ping
    )
    assert isinstance(raw, resilient_dbapi.ResilientConnection)
    assert count == 1


@pytest.mark.parametrize("driver", ["pymysql", "mysqldb", "mysqlconnector"])
def test_the_same_kill_breaks_sqlalchemys_own_dialect(
    server: Any, db: dict[str, Any], driver: str
) -> None:
    with pytest.raises(sqlalchemy.exc.OperationalError):
        _killed_while_pooled(server, _url(f"mysql+{driver}", db))


def test_the_url_names_the_policies(db: dict[str, Any]) -> None:
    engine = sqlalchemy.create_engine(_url("mysql+resilient_pymysql", db, "policies=no-such"))
    with pytest.raises(Exception, match="no-such"):  # the profile is looked up
        engine.connect()
    engine.dispose()


_ON_CONNECT = "on_connect=SET time_zone = '%2B03:00'&on_connect=SET @origin = 'url'"
_SESSION = "SELECT @@time_zone, @origin"
_ID = "SELECT CONNECTION_ID()"


def test_the_url_names_statements_for_every_new_connection(server: Any, db: dict[str, Any]) -> None:
    """``?on_connect=`` (repeated for several) runs on the first connection and on the
    one that replaces it after a kill, sync and asyncio alike."""
    engine = sqlalchemy.create_engine(
        _url("mysql+resilient_pymysql", db, _ON_CONNECT), pool_size=1, max_overflow=0
    )
    try:
        with engine.connect() as conn:
            first = (*conn.exec_driver_sql(_SESSION).one(), conn.exec_driver_sql(_ID).scalar())
        kill(server, int(first[2]))
        with engine.connect() as conn:  # read on a new connection, after the kill
            second = (*conn.exec_driver_sql(_SESSION).one(), conn.exec_driver_sql(_ID).scalar())
    finally:
        engine.dispose()
    assert first[:2] == second[:2] == ("+03:00", "url") and first[2] != second[2]

    async def story() -> tuple[Any, Any]:
        engine = create_async_engine(
            _url("mysql+resilient_aiomysql", db, _ON_CONNECT), pool_size=1, max_overflow=0
        )
        try:
            async with engine.connect() as conn:
                first = (*(await conn.exec_driver_sql(_SESSION)).one(), await _id(conn))
            kill(server, int(first[2]))
            async with engine.connect() as conn:
                second = (*(await conn.exec_driver_sql(_SESSION)).one(), await _id(conn))
        finally:
            await engine.dispose()
        return first, second

    async def _id(conn: Any) -> Any:
        return (await conn.exec_driver_sql(_ID)).scalar()

    first, second = run(story())
    assert first[:2] == second[:2] == ("+03:00", "url") and first[2] != second[2]


def test_an_asyncio_url_alone_makes_the_pool_survive_a_kill(
    server: Any, db: dict[str, Any]
) -> None:
    async def story() -> tuple[Any, Any]:
        engine = create_async_engine(
            _url("mysql+resilient_aiomysql", db, "policies=web"), pool_size=1, max_overflow=0
        )
        try:
            async with engine.connect() as conn:
                result = await conn.exec_driver_sql("SELECT CONNECTION_ID()")
                thread_id = result.scalar()
                raw = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
            await asyncio.to_thread(kill, server, int(thread_id))
            async with engine.connect() as conn:
                await conn.execute(text("INSERT INTO t (uid) VALUES ('after the kill')"))
                await conn.commit()
                result = await conn.exec_driver_sql("SELECT COUNT(*) FROM t")
                return raw, result.scalar()
        finally:
            await engine.dispose()

    raw, count = run(story())
    assert isinstance(raw._connection, aio.AsyncResilientConnection)
    assert count == 1


def _noop_update_rowcount(url: str) -> int:
    """An UPDATE that matches a row and changes nothing: SQLAlchemy's ORM expects the
    rows matched (CLIENT.FOUND_ROWS), or it raises StaleDataError."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t (uid, v) VALUES ('same', 1)")
            result = conn.exec_driver_sql("UPDATE t SET v = 1 WHERE uid = 'same'")
            count = result.rowcount
            conn.exec_driver_sql("DELETE FROM t")
            return int(count)
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", ["pymysql", "mysqldb", "mysqlconnector"])
def test_rows_matched_count_as_with_sqlalchemys_own_dialect(
    db: dict[str, Any], driver: str
) -> None:
    ours = _noop_update_rowcount(_url(f"mysql+resilient_{driver}", db))
    assert ours == _noop_update_rowcount(_url(f"mysql+{driver}", db)) == 1


def test_a_lost_transaction_does_not_recycle_the_rest_of_the_pool(
    server: Any, db: dict[str, Any]
) -> None:
    """SQLAlchemy takes a disconnect error as the end of every pooled connection; the
    loss of one transaction on one connection, which the proxy replaced already, is
    not that: the other pooled connection is kept."""
    engine = sqlalchemy.create_engine(_url("mysql+resilient_pymysql", db), pool_size=2)
    try:
        with engine.connect() as first, engine.connect() as second:
            kept = second.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            lost = first.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            first.exec_driver_sql("INSERT INTO t (uid) VALUES ('lost')")
            kill(server, int(lost))
            with pytest.raises(sqlalchemy.exc.OperationalError) as info:
                first.exec_driver_sql("INSERT INTO t (uid) VALUES ('second')")
            assert isinstance(info.value.orig, resilient_dbapi.TransactionLostError)
            first.rollback()
        with engine.connect() as again, engine.connect() as other:
            # The driver's own thread ids (a session that replaced another refuses a
            # first CONNECTION_ID(): it would answer for itself).
            ids = {c.connection.dbapi_connection.thread_id() for c in (again, other)}
        assert kept in ids  # the healthy connection was not recycled
    finally:
        engine.dispose()


def test_results_stream_through_the_asyncio_url(db: dict[str, Any]) -> None:
    async def story() -> list[Any]:
        engine = create_async_engine(_url("mysql+resilient_aiomysql", db))
        try:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (uid) VALUES ('a'), ('b')"))
            async with engine.connect() as conn:
                result = await conn.stream(text("SELECT uid FROM t ORDER BY id"))
                return [row[0] async for row in result]
        finally:
            await engine.dispose()

    assert run(story()) == ["a", "b"]


@pytest.fixture
def pgkw(pg_server: Any) -> Iterator[dict[str, Any]]:
    yield from postgres_database(pg_server)


def _pg_url(scheme: str, kwargs: dict[str, Any], query: str = "") -> str:
    url = f"{scheme}://{kwargs['user']}@{kwargs['host']}:{kwargs['port']}/{kwargs['dbname']}"
    return f"{url}?{query}" if query else url


def _terminated_while_pooled(pg_server: Any, url: str, pre_ping: bool) -> Any:
    """As :func:`_killed_while_pooled`, with ``pg_terminate_backend``."""
    engine = sqlalchemy.create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=pre_ping)
    try:
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            driver_connection = conn.connection.dbapi_connection
        admin = pg_server.admin()
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        admin.close()
        time.sleep(0.6)  # past skip_recent: the socket check finds it gone
        with engine.connect() as conn:
            conn.exec_driver_sql("INSERT INTO t (uid) VALUES ('after the kill')")
            conn.commit()
            # The pool kept its connection: the proxy replaced what was under it.
            assert conn.connection.dbapi_connection is driver_connection
            assert driver_connection.reconnects == 1
            return driver_connection, conn.exec_driver_sql("SELECT COUNT(*) FROM t").scalar()
    finally:
        engine.dispose()


@pytest.mark.parametrize("pre_ping", [False, True], ids=["", "pool_pre_ping"])
def test_a_postgresql_url_alone_makes_the_pool_survive_a_terminated_backend(
    pg_server: Any, pgkw: dict[str, Any], pre_ping: bool
) -> None:
    """``postgresql+resilient_psycopg://...?policies=web``; SQLAlchemy's own
    ``pool_pre_ping`` (an empty statement, ``;``) on top too."""
    raw, count = _terminated_while_pooled(
        pg_server, _pg_url("postgresql+resilient_psycopg", pgkw, "policies=web"), pre_ping
    )
    assert isinstance(raw, resilient_dbapi.ResilientConnection)
    assert count == 1


def test_the_same_termination_breaks_sqlalchemys_own_psycopg_dialect(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    with pytest.raises(sqlalchemy.exc.OperationalError):
        _terminated_while_pooled(pg_server, _pg_url("postgresql+psycopg", pgkw), False)


def test_the_postgresql_dialect_has_no_asyncio_form_and_says_so(pgkw: dict[str, Any]) -> None:
    with pytest.raises(sqlalchemy.exc.ArgumentError, match="no asyncio form"):
        create_async_engine(_pg_url("postgresql+resilient_psycopg", pgkw))
