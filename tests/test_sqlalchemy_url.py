"""SQLAlchemy from a URL alone: ``mysql+resilient_<driver>://...?policies=...`` finds
resilient_dbapi's dialects through their entry points, and a pooled connection the
server killed while idle serves the next statement. The same scenario with SQLAlchemy's
own dialect for the driver fails."""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import resilient_dbapi
from resilient_dbapi import aio

from .conftest import kill
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
@pytest.mark.parametrize("driver", ["pymysql", "mysqldb"])
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


@pytest.mark.parametrize("driver", ["pymysql", "mysqldb"])
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
