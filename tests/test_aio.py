"""The stories of the sync suite, for the asyncio proxy over aiomysql (a real MariaDB);
each failure is also shown happening with plain aiomysql."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiomysql
import pymysql
import pytest

from resilient_dbapi import (
    ConcurrentUseError,
    MaxAge,
    OutcomeUnknownError,
    PingOnCheckout,
    RetryOnError,
    SessionLostError,
    TransactionLostError,
    aio,
)
from resilient_dbapi.testing import FaultProxy, MariaDBServer

from .conftest import kill, rows
from .test_stories import _restart_in_background

pytestmark = pytest.mark.server
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def aio_kwargs(kwargs: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """PyMySQL-style keyword arguments for aiomysql (which names the database ``db``)."""
    kwargs = {**kwargs, **overrides}
    if "database" in kwargs:
        kwargs["db"] = kwargs.pop("database")
    return kwargs


def _count(server: Any, db: dict[str, Any], uid: str) -> int:
    return int(rows(server, db, "SELECT COUNT(*) FROM t WHERE uid = %s", (uid,))[0][0])


CHECK_EVERY_TIME = [PingOnCheckout(skip_recent=0.0), MaxAge(), RetryOnError()]


# -- idle timeout -------------------------------------------------------------------


def test_idle_timeout_breaks_plain_aiomysql(db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aiomysql.connect(**aio_kwargs(db))
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION wait_timeout = 1")
            await asyncio.sleep(2)
            with pytest.raises(pymysql.err.OperationalError) as info:
                await cur.execute("SELECT 1")
        assert info.value.args[0] == 2013
        conn.close()

    run(story())


def test_idle_timeout_recovers(db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db))
        cur = await conn.cursor()
        await cur.execute("SET SESSION wait_timeout = 1")
        await asyncio.sleep(2)
        await cur.execute("SELECT @@SESSION.wait_timeout")
        assert await cur.fetchall() == ((1,),)  # on a new connection, the setting replayed
        assert conn.reconnects == 1
        conn.close()

    run(story())


# -- KILL ---------------------------------------------------------------------------


def test_kill_breaks_plain_aiomysql(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aiomysql.connect(**aio_kwargs(db, autocommit=True))
        kill(server, conn.thread_id())
        async with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError):
                await cur.execute("INSERT INTO t (uid) VALUES ('after-kill')")
        conn.close()

    run(story())


@pytest.mark.parametrize("let_the_loop_run", [False, True])
def test_kill_recovers_before_sending(
    server: Any, db: dict[str, Any], let_the_loop_run: bool
) -> None:
    """Found before the write is sent, whether the event loop has seen the connection
    close (the reader is at EOF) or not yet (the socket is readable)."""

    async def story() -> None:
        conn = await aio.connect(
            aiomysql.connect, **aio_kwargs(db, autocommit=True), policies=CHECK_EVERY_TIME
        )
        old_thread = conn.thread_id()
        kill(server, old_thread)  # blocks the loop: it cannot notice meanwhile
        if let_the_loop_run:
            await asyncio.sleep(0.05)
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES ('after-kill')")
        assert conn.thread_id() != old_thread
        assert conn.reconnects == 1
        assert conn.stats.reconnect_reasons == {"liveness": 1}
        conn.close()

    run(story())
    assert _count(server, db, "after-kill") == 1


def test_kill_with_default_policies_after_the_skip_window(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db, autocommit=True))
        kill(server, conn.thread_id())
        await asyncio.sleep(0.6)  # past skip_recent: the checkout looks at the connection
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO t (uid) VALUES ('later')")
        assert conn.reconnects == 1
        conn.close()

    run(story())
    assert _count(server, db, "later") == 1


# -- restart ------------------------------------------------------------------------


def test_restart_breaks_plain_aiomysql(own_server: MariaDBServer) -> None:
    async def story() -> None:
        conn = await aiomysql.connect(**own_server.connect_kwargs())
        thread = _restart_in_background(own_server, 1.0)
        try:
            async with conn.cursor() as cur:
                with pytest.raises(pymysql.err.OperationalError):
                    await cur.execute("SELECT 42")
        finally:
            thread.join()
        conn.close()

    run(story())


def test_restart_waits_for_the_server(own_server: MariaDBServer) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **own_server.connect_kwargs())
        thread = _restart_in_background(own_server, 1.0)
        started = time.monotonic()
        try:
            # Other tasks run while the connection waits for the server to come back.
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.05)

            ticking = asyncio.create_task(ticker())
            cur = await conn.cursor()
            await cur.execute("SELECT 42")
            assert await cur.fetchall() == ((42,),)
            ticking.cancel()
        finally:
            thread.join()
        assert time.monotonic() - started >= 0.9
        assert ticks >= 10  # the retries slept with asyncio.sleep, not time.sleep
        assert conn.reconnects == 1
        conn.close()

    run(story())


# -- transactions -------------------------------------------------------------------


def test_transaction_lost_commits_nothing(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db))  # autocommit off
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES ('first-half')")
        kill(server, conn.thread_id())
        with pytest.raises(TransactionLostError) as info:
            await cur.execute("INSERT INTO t (uid) VALUES ('second-half')")
        assert isinstance(info.value, pymysql.err.OperationalError)
        with pytest.raises(TransactionLostError):
            await conn.commit()
        assert conn.get_transaction_status()  # a pool would not hand it out as is
        await conn.rollback()
        await cur.execute("INSERT INTO t (uid) VALUES ('again')")
        await conn.commit()
        conn.close()

    run(story())
    assert rows(server, db, "SELECT uid FROM t") == [("again",)]


def test_plain_reconnect_would_commit_half_a_transaction(server: Any, db: dict[str, Any]) -> None:
    """What a blind reconnect-and-retry does with the same story: a partial commit."""

    async def story() -> None:
        kwargs = aio_kwargs(db)
        conn = await aiomysql.connect(**kwargs)
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES ('first-half')")
        kill(server, conn.thread_id())
        try:
            await cur.execute("INSERT INTO t (uid) VALUES ('second-half')")
        except pymysql.err.OperationalError:
            conn.close()
            conn = await aiomysql.connect(**kwargs)
            cur = await conn.cursor()
            await cur.execute("INSERT INTO t (uid) VALUES ('second-half')")
        await conn.commit()
        conn.close()

    run(story())
    assert rows(server, db, "SELECT uid FROM t") == [("second-half",)]


def test_write_lost_after_send_is_outcome_unknown_and_applied_once(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    async def story() -> None:
        kwargs = aio_kwargs(db, host="127.0.0.1", port=proxy.port, autocommit=True)
        conn = await aio.connect(aiomysql.connect, **kwargs)
        cur = await conn.cursor()
        proxy.cut_after(b"in-flight")
        with pytest.raises(OutcomeUnknownError) as info:
            await cur.execute("INSERT INTO t (uid) VALUES ('in-flight')")
        assert isinstance(info.value, pymysql.err.OperationalError)
        assert info.value.args[0] == 2013
        await cur.execute("SELECT COUNT(*) FROM t")  # the next statement: a new connection
        assert await cur.fetchone() == (1,)
        conn.close()

    run(story())
    assert _count(server, db, "in-flight") == 1


def test_write_killed_in_flight(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db, autocommit=True))
        killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
        killer.start()
        try:
            cur = await conn.cursor()
            with pytest.raises(OutcomeUnknownError):
                await cur.execute("INSERT INTO t (uid, v) SELECT 'slow', SLEEP(2)")
        finally:
            killer.join()
        conn.close()

    run(story())
    assert _count(server, db, "slow") <= 1


def test_read_killed_in_flight_is_sent_again(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db))
        killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
        killer.start()
        try:
            cur = await conn.cursor()
            await cur.execute("SELECT SLEEP(1), 7")
            assert await cur.fetchall() == ((0, 7),)
        finally:
            killer.join()
        assert conn.reconnects == 1
        conn.close()

    run(story())


def test_read_killed_in_flight_breaks_plain_aiomysql(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aiomysql.connect(**aio_kwargs(db))
        killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
        killer.start()
        try:
            async with conn.cursor() as cur:
                with pytest.raises(pymysql.err.OperationalError):
                    await cur.execute("SELECT SLEEP(1), 7")
        finally:
            killer.join()
        conn.close()

    run(story())


# -- cancellation and shared use ----------------------------------------------------


def test_cancelled_read_abandons_the_connection(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db, autocommit=True))
        old_thread = conn.thread_id()
        cur = await conn.cursor()
        task = asyncio.create_task(cur.execute("SELECT SLEEP(5)"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        fresh = await conn.cursor()  # a new cursor too (aiomysql makes none on a closed one)
        await fresh.execute("SELECT 8")  # never on the connection whose reply is pending
        assert await fresh.fetchall() == ((8,),)
        assert conn.thread_id() != old_thread
        await cur.execute("SELECT 9")  # and the old cursor moves to the new connection
        assert await cur.fetchall() == ((9,),)
        conn.close()

    run(story())


def test_cancelled_write_in_a_transaction_is_reported_lost(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db))  # autocommit off
        cur = await conn.cursor()
        slow = "INSERT INTO t (uid, v) SELECT %s, SLEEP(%s)"
        await cur.execute(slow, ("shown", 0))  # the server shows it writes InnoDB only
        await conn.rollback()
        await cur.execute("INSERT INTO t (uid) VALUES ('before')")
        task = asyncio.create_task(cur.execute(slow, ("slow", 5)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(TransactionLostError):
            await cur.execute("INSERT INTO t (uid) VALUES ('after')")
        await conn.rollback()
        conn.close()

    run(story())
    time.sleep(0.2)
    assert rows(server, db, "SELECT uid FROM t") == []


def test_cancelled_statement_breaks_plain_aiomysql(db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aiomysql.connect(**aio_kwargs(db, autocommit=True))
        cur = await conn.cursor()
        task = asyncio.create_task(cur.execute("SELECT SLEEP(5)"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(pymysql.err.InterfaceError):
            await cur.execute("SELECT 8")

    run(story())


def test_two_tasks_on_one_connection_break_plain_aiomysql(db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aiomysql.connect(**aio_kwargs(db))
        one, two = await conn.cursor(), await conn.cursor()
        outcomes = await asyncio.gather(
            one.execute("SELECT SLEEP(0.2), 1"), two.execute("SELECT 2"), return_exceptions=True
        )
        assert any(isinstance(o, RuntimeError) for o in outcomes), outcomes
        conn.close()

    run(story())


def test_two_tasks_on_one_connection_are_refused(db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db))
        one, two = await conn.cursor(), await conn.cursor()
        first, second = await asyncio.gather(
            one.execute("SELECT SLEEP(0.2), 1"), two.execute("SELECT 2"), return_exceptions=True
        )
        assert first == 1
        assert isinstance(second, ConcurrentUseError)
        assert isinstance(second, pymysql.err.ProgrammingError)
        assert await one.fetchall() == ((0, 1),)  # the first result is intact
        await two.execute("SELECT 2")  # and the connection serves the next statement
        assert await two.fetchall() == ((2,),)
        assert conn.stats.concurrent_use_refused == 1
        conn.close()

    run(story())


# -- the aiomysql surface -----------------------------------------------------------


def test_aiomysql_surface(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        async with await aio.connect(aiomysql.connect, **aio_kwargs(db)) as conn:
            async with conn.cursor(aiomysql.DictCursor) as cur:
                await cur.execute("INSERT INTO t (uid) VALUES (%s)", ("a",))
                assert cur.lastrowid == 1
                await cur.executemany("INSERT INTO t (uid) VALUES (%s)", [("b",), ("c",)])
                await conn.commit()
                await cur.execute("SELECT uid FROM t ORDER BY id")
                assert await cur.fetchone() == {"uid": "a"}
                assert await cur.fetchmany(1) == [{"uid": "b"}]
                assert [row async for row in cur] == [{"uid": "c"}]
            ss = await conn.cursor(aiomysql.SSCursor)
            await ss.execute("SELECT uid FROM t ORDER BY id")
            assert await ss.fetchone() == ("a",)
            assert await ss.fetchall() == [("b",), ("c",)]
            await ss.close()
            assert conn.get_autocommit() is False
            await conn.autocommit(True)
            await conn.select_db(db["database"])
            await conn.ping()
            assert conn.character_set_name()
            assert not conn.closed
            await conn.ensure_closed()
            assert conn.closed
            with pytest.raises(pymysql.err.InterfaceError):
                await conn.cursor()

    run(story())


def test_session_state_lost_is_reported(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(
            aiomysql.connect, **aio_kwargs(db, autocommit=True), policies=CHECK_EVERY_TIME
        )
        cur = await conn.cursor()
        await cur.execute("SET @x = 1")
        kill(server, conn.thread_id())
        with pytest.raises(SessionLostError):
            await cur.execute("SELECT @x")
        await cur.execute("SELECT @x")
        assert await cur.fetchall() == ((None,),)
        conn.close()

    run(story())


def test_a_failed_connection_is_freed_without_the_garbage_collector(
    server: Any, db: dict[str, Any]
) -> None:
    async def story() -> weakref.ref[Any]:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db))
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES ('x')")
        kill(server, conn.thread_id())
        with pytest.raises(TransactionLostError):
            await cur.execute("INSERT INTO t (uid) VALUES ('y')")
        return weakref.ref(conn)

    gc.disable()
    try:
        ref = run(story())
        assert ref() is None
    finally:
        gc.enable()


def test_a_sync_driver_is_refused_by_the_asyncio_proxy(server: Any) -> None:
    async def story() -> None:
        with pytest.raises(TypeError, match=r"aiomysql\.connect.*resilient_dbapi\.connect\(\)"):
            await aio.connect(pymysql.connect, **server.connect_kwargs())

    run(story())


def test_an_asyncio_driver_is_refused_by_the_sync_proxy(server: Any) -> None:
    import resilient_dbapi

    with pytest.raises(TypeError, match=r"pymysql\.connect.*resilient_dbapi\.aio\.connect\(\)"):
        resilient_dbapi.connect(aiomysql.connect, **server.connect_kwargs())


def test_kill_seen_by_the_event_loop_is_found_inside_the_skip_window(
    server: Any, db: dict[str, Any]
) -> None:
    """What the event loop already knows costs nothing to look at: no write is sent to a
    connection the loop has seen closed, however recently it was used."""

    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db, autocommit=True))
        cur = await conn.cursor()
        await cur.execute("SELECT 1")
        kill(server, conn.thread_id())
        await asyncio.sleep(0.05)  # the loop reads the end of the stream
        await cur.execute("INSERT INTO t (uid) VALUES ('recent')")  # inside skip_recent
        assert conn.reconnects == 1
        conn.close()

    run(story())
    assert _count(server, db, "recent") == 1
