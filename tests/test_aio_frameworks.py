"""The asyncio proxy under aiomysql's pool, SQLAlchemy asyncio and Tortoise-ORM, against
a real MariaDB; each failure is also shown happening without resilient_dbapi."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomysql
import pymysql
import pytest
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import create_async_engine
from tortoise import Tortoise
from tortoise.transactions import in_transaction

from resilient_dbapi import ConcurrentUseError, ReplayTransaction, TransactionLostError, aio
from resilient_dbapi import aiomysql as resilient_aiomysql
from resilient_dbapi.policies import default_policies

from .conftest import kill, rows
from .test_aio import aio_kwargs, run
from .tortoise_models import Item

pytestmark = pytest.mark.server


def _threads(server: Any, database: str) -> list[int]:
    admin = server.admin()
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s", (database,))
            return [row[0] for row in cur.fetchall()]
    finally:
        admin.close()


def _kill_all(server: Any, database: str) -> int:
    """Kill every connection to ``database``, without letting an event loop run."""
    threads = _threads(server, database)
    for thread_id in threads:
        kill(server, thread_id)
    return len(threads)


# -- aiomysql's pool ----------------------------------------------------------------


def test_pool_connections_recover_after_a_kill(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        async with resilient_aiomysql.create_pool(
            minsize=2, maxsize=2, **aio_kwargs(db, autocommit=True)
        ) as pool:
            assert isinstance(pool, aiomysql.Pool)
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("INSERT INTO t (uid) VALUES ('a')")
            assert _kill_all(server, db["database"]) == 2
            for _ in range(3):
                async with pool.acquire() as conn, conn.cursor() as cur:
                    await cur.execute("SELECT COUNT(*) FROM t")
                    assert await cur.fetchone() == (1,)
            assert pool.size == 2

    run(story())


def test_pool_terminate_aborts_a_connection_in_use(db: dict[str, Any]) -> None:
    async def story() -> None:
        pool = await resilient_aiomysql.create_pool(minsize=1, maxsize=1, **aio_kwargs(db))
        conn = await pool.acquire()
        cur = await conn.cursor()
        busy = asyncio.create_task(cur.execute("SELECT SLEEP(5)"))
        await asyncio.sleep(0.2)
        pool.terminate()  # closes acquired connections at once, as aiomysql's does
        with pytest.raises(pymysql.err.Error):
            await busy
        assert conn.closed
        await pool.wait_closed()

    run(story())


def test_plain_pool_hands_out_a_killed_connection(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        async with aiomysql.create_pool(minsize=1, maxsize=1, **aio_kwargs(db)) as pool:
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT 1")
            _kill_all(server, db["database"])
            with pytest.raises(pymysql.err.OperationalError):
                async with pool.acquire() as conn, conn.cursor() as cur:
                    await cur.execute("SELECT COUNT(*) FROM t")

    run(story())


def test_drop_in_connect(db: dict[str, Any]) -> None:
    async def story() -> None:
        async with resilient_aiomysql.connect(**aio_kwargs(db)) as conn:
            assert isinstance(conn, aio.AsyncResilientConnection)
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
                assert await cur.fetchone() == (1,)
        assert conn.closed

    run(story())


# -- SQLAlchemy asyncio -------------------------------------------------------------


def _idle_past_wait_timeout(async_creator: Any) -> Any:
    async def story() -> Any:
        engine = create_async_engine("mysql+aiomysql://", async_creator=async_creator)
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SET SESSION wait_timeout = 1")
            await asyncio.sleep(2)
            async with engine.connect() as conn:
                result = await conn.exec_driver_sql("SELECT 1")
                return result.scalar()
        finally:
            await engine.dispose()

    return run(story())


def test_sqlalchemy_asyncio_idle_timeout_breaks_without(db: dict[str, Any]) -> None:
    kwargs = aio_kwargs(db)

    async def plain() -> Any:
        return await aiomysql.connect(**kwargs)

    with pytest.raises(sqlalchemy.exc.OperationalError, match="Lost connection"):
        _idle_past_wait_timeout(plain)


def test_sqlalchemy_asyncio_idle_timeout_recovers(db: dict[str, Any]) -> None:
    assert _idle_past_wait_timeout(aio.creator(aiomysql.connect, **aio_kwargs(db))) == 1


def test_sqlalchemy_asyncio_orm_roundtrip(db: dict[str, Any]) -> None:
    from sqlalchemy import text

    async def story() -> None:
        engine = create_async_engine(
            "mysql+aiomysql://", async_creator=aio.creator(aiomysql.connect, **aio_kwargs(db))
        )
        try:
            async with engine.begin() as conn:
                insert = text("INSERT INTO t (uid) VALUES (:u)")
                await conn.execute(insert, [{"u": "a"}, {"u": "b"}])
            async with engine.connect() as conn:
                result = await conn.stream(text("SELECT uid FROM t ORDER BY id"))
                assert [row[0] async for row in result] == ["a", "b"]
        finally:
            await engine.dispose()

    run(story())


# -- Tortoise-ORM -------------------------------------------------------------------


def _tortoise_config(db: dict[str, Any], engine: str, **extra: Any) -> dict[str, Any]:
    return {
        "connections": {
            "default": {
                "engine": engine,
                "credentials": {
                    "host": db["host"],
                    "port": db["port"],
                    "user": db["user"],
                    "password": db["password"],
                    "database": db["database"],
                    "minsize": 2,
                    "maxsize": 2,
                    **extra,
                },
            }
        },
        "apps": {"models": {"models": ["tests.tortoise_models"], "default_connection": "default"}},
    }


async def _with_tortoise(db: dict[str, Any], engine: str, body: Any, **extra: Any) -> None:
    await Tortoise.init(config=_tortoise_config(db, engine, **extra))
    try:
        await Tortoise.generate_schemas()
        await body()
    finally:
        await Tortoise.close_connections()


RESILIENT = "resilient_dbapi.contrib.tortoise"
PLAIN = "tortoise.backends.mysql"


def test_tortoise_recovers_after_the_server_kills_the_pool(server: Any, db: dict[str, Any]) -> None:
    async def body() -> None:
        await Item.create(name="a")
        await asyncio.sleep(0.6)  # the pool's connections idle (past skip_recent)
        assert _kill_all(server, db["database"]) == 2
        assert (await Item.get(name="a")).name == "a"
        await Item.create(name="b")
        assert await Item.all().count() == 2

    run(_with_tortoise(db, RESILIENT, body))


def test_plain_tortoise_fails_after_the_server_kills_the_pool(
    server: Any, db: dict[str, Any]
) -> None:
    from tortoise.exceptions import OperationalError

    async def body() -> None:
        await Item.create(name="a")
        await asyncio.sleep(0.6)
        _kill_all(server, db["database"])
        with pytest.raises(OperationalError):
            await Item.get(name="a")

    run(_with_tortoise(db, PLAIN, body))


def test_tortoise_transactions_and_savepoints(db: dict[str, Any]) -> None:
    async def body() -> None:
        async with in_transaction():
            await Item.create(name="kept")
            try:
                async with in_transaction():  # a savepoint
                    await Item.create(name="undone")
                    raise RuntimeError("roll back to the savepoint")
            except RuntimeError:
                pass
        assert [i.name for i in await Item.all()] == ["kept"]

    run(_with_tortoise(db, RESILIENT, body))


def _chain(exc: BaseException) -> list[BaseException]:
    seen = [exc]
    for _ in range(5):
        nxt = seen[-1].__cause__ or seen[-1].__context__
        if nxt is None:
            break
        seen.append(nxt)
    seen.extend(arg for arg in exc.args if isinstance(arg, BaseException))
    return seen


async def _nested_transactions_in_spawned_tasks() -> list[Any]:
    async def inner(name: str) -> None:
        async with in_transaction():
            await Item.create(name=name)

    outcomes: list[Any] = []
    async with in_transaction():
        await Item.create(name="outer")
        outcomes = await asyncio.gather(inner("one"), inner("two"), return_exceptions=True)
    return outcomes


def test_plain_tortoise_interleaves_nested_transactions_in_tasks(db: dict[str, Any]) -> None:
    outcomes: list[Any] = []

    async def body() -> None:
        nonlocal outcomes
        try:
            outcomes = await _nested_transactions_in_spawned_tasks()
        except Exception as exc:  # the outer transaction may break too
            outcomes = [exc]

    run(_with_tortoise(db, PLAIN, body))
    errors = [e for o in outcomes if isinstance(o, BaseException) for e in _chain(o)]
    assert any("readexactly" in str(e) or isinstance(e, RuntimeError) for e in errors), outcomes


def test_tortoise_nested_transactions_in_tasks_are_refused(db: dict[str, Any]) -> None:
    async def body() -> None:
        outcomes = await _nested_transactions_in_spawned_tasks()
        errors = [e for o in outcomes if isinstance(o, BaseException) for e in _chain(o)]
        assert any(isinstance(e, ConcurrentUseError) for e in errors), outcomes
        assert not any(isinstance(e, RuntimeError) for e in errors), outcomes
        # What the tasks that were let through wrote is there, exactly once; nothing else.
        written = sorted(i.name for i in await Item.all())
        succeeded = [n for n, o in zip(("one", "two"), outcomes, strict=True) if o is None]
        assert written == sorted(["outer", *succeeded])

    run(_with_tortoise(db, RESILIENT, body))


@pytest.mark.parametrize("replay", [False, True], ids=["replay-off", "replay-on"])
def test_a_tortoise_transaction_killed_before_commit_goes_on_after_a_replay(
    server: Any, db: dict[str, Any], replay: bool
) -> None:
    """``in_transaction()`` on the resilient pool with ``ReplayTransaction`` among the
    policies: a rename of two rows (ids given by the caller) killed between its updates
    goes on after a replay and commits once; without replay it fails, nothing
    committed."""
    from tortoise.exceptions import OperationalError

    policies = [*default_policies(), ReplayTransaction()] if replay else None

    async def body() -> None:
        await Item.create(id=1, name="a")
        await Item.create(id=2, name="b")

        stats: list[Any] = []

        async def rename() -> None:
            async with in_transaction() as tx:
                await Item.select_for_update().using_db(tx).get(id=1)
                # Relative updates: one applied twice shows in the result.
                await tx.execute_query("UPDATE item SET name = CONCAT(name, '2') WHERE id = 1")
                kill(server, tx._connection.thread_id())
                await tx.execute_query("UPDATE item SET name = CONCAT(name, '2') WHERE id = 2")
                stats.append(tx._connection.stats)

        if replay:
            await rename()
            assert stats[0].transactions_replayed == 1
        else:
            with pytest.raises(OperationalError) as caught:
                await rename()
            assert isinstance(caught.value.args[0], TransactionLostError)  # Tortoise wraps it
        names = sorted(row[0] for row in rows(server, db, "SELECT name FROM item"))
        assert names == (["a2", "b2"] if replay else ["a", "b"])

    run(_with_tortoise(db, RESILIENT, body, policies=policies))
