"""run_transaction against the real server: a deadlock made on purpose, a kill
mid-transaction, a kill during COMMIT, a lock wait timeout; the end state checked each
time, and the same faults shown failing without it."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import aiomysql
import psycopg
import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import OutcomeUnknownError, RetryOnError, TransactionLostError, aio
from resilient_dbapi.testing import FaultProxy, kill_connection

from .conftest import rows
from .drivers import postgres_database

pytestmark = pytest.mark.server


@pytest.fixture
def accounts(server: Any, db: dict[str, Any]) -> dict[str, Any]:
    admin = server.admin(database=db["database"])
    with admin.cursor() as cur:
        cur.execute("CREATE TABLE acc (id INT PRIMARY KEY, n INT NOT NULL)")
        cur.execute("INSERT INTO acc VALUES (1, 0), (2, 0)")
    admin.close()
    return db


def _crossing(
    barrier: threading.Barrier, runs: Counter[str], name: str, order: tuple[int, int]
) -> Callable[[Any], str]:
    """A unit that updates two rows in ``order``, meeting the other unit in between on
    its first run: the two lock each other's second row, and the server picks a victim."""

    def unit(conn: Any) -> str:
        runs[name] += 1
        cur = conn.cursor()
        cur.execute("UPDATE acc SET n = n + 1 WHERE id = %s", (order[0],))
        if runs[name] == 1:
            barrier.wait()
        cur.execute("UPDATE acc SET n = n + 1 WHERE id = %s", (order[1],))
        return name

    return unit


def test_a_deadlock_runs_the_victim_again(server: Any, accounts: dict[str, Any]) -> None:
    barrier, runs = threading.Barrier(2, timeout=10), Counter[str]()
    results: dict[str, str] = {}

    def run(name: str, order: tuple[int, int]) -> None:
        conn = resilient_dbapi.connect(pymysql.connect, **accounts)
        try:
            unit = _crossing(barrier, runs, name, order)
            results[name] = resilient_dbapi.run_transaction(conn, unit)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=a) for a in (("a", (1, 2)), ("b", (2, 1)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {"a": "a", "b": "b"}
    assert sorted(runs.values()) == [1, 2]  # the victim ran twice, the other once
    assert rows(server, accounts, "SELECT id, n FROM acc ORDER BY id") == [(1, 2), (2, 2)]


def test_the_same_deadlock_fails_without_it(server: Any, accounts: dict[str, Any]) -> None:
    barrier, runs = threading.Barrier(2, timeout=10), Counter[str]()
    errors: list[int] = []

    def run(name: str, order: tuple[int, int]) -> None:
        conn = pymysql.connect(**accounts)
        try:
            _crossing(barrier, runs, name, order)(conn)
            conn.commit()
        except pymysql.err.OperationalError as exc:
            errors.append(exc.args[0])
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=a) for a in (("a", (1, 2)), ("b", (2, 1)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [1213]  # the victim's work is gone: its caller must handle it
    assert sorted(n for _, n in rows(server, accounts, "SELECT id, n FROM acc")) == [1, 1]


def test_a_kill_mid_transaction_runs_the_unit_again(server: Any, db: dict[str, Any]) -> None:
    admin, runs = server.admin(), Counter[str]()
    conn = resilient_dbapi.connect(pymysql.connect, **db)

    def unit(c: Any) -> int:
        runs["unit"] += 1
        cur = c.cursor()
        cur.execute("INSERT INTO t (uid) VALUES ('first')")
        if runs["unit"] == 1:
            kill_connection(admin, c.thread_id())
        cur.execute("INSERT INTO t (uid) VALUES ('second')")  # TransactionLostError, once
        return runs["unit"]

    assert resilient_dbapi.run_transaction(conn, unit) == 2
    assert rows(server, db, "SELECT uid FROM t ORDER BY uid") == [("first",), ("second",)]
    conn.close()
    admin.close()


def test_a_commit_of_unknown_outcome_asks_already_applied(server: Any, db: dict[str, Any]) -> None:
    with FaultProxy(server.port) as proxy:
        conn = resilient_dbapi.connect(pymysql.connect, **{**db, "port": proxy.port})

        def unit(c: Any) -> str:
            c.cursor().execute("INSERT INTO t (uid) VALUES ('once')")
            proxy.cut_after(b"COMMIT")  # the COMMIT reaches the server; its reply is lost
            return "done"

        with pytest.raises(OutcomeUnknownError):
            resilient_dbapi.run_transaction(conn, unit)  # no check given: never guessed
        # The caller was told: until it acknowledges with rollback(), nothing goes on.
        with pytest.raises(OutcomeUnknownError):
            resilient_dbapi.run_transaction(conn, unit)
        conn.rollback()

        def applied(c: Any) -> bool:
            cur = c.cursor()
            cur.execute("SELECT COUNT(*) FROM t WHERE uid = 'once'")
            return bool(cur.fetchone()[0] >= 2)  # the first run's row is there already

        assert resilient_dbapi.run_transaction(conn, unit, already_applied=applied) == "done"
        conn.close()
    assert rows(server, db, "SELECT COUNT(*) FROM t") == [(2,)]  # each run once, no more


def test_a_lock_wait_timeout_rolls_back_and_runs_again(
    server: Any, accounts: dict[str, Any]
) -> None:
    blocker = pymysql.connect(**accounts)
    blocker.cursor().execute("UPDATE acc SET n = n + 10 WHERE id = 1")  # holds the row lock
    release = threading.Timer(1.5, blocker.commit)
    release.start()
    runs = Counter[str]()
    conn = resilient_dbapi.connect(
        pymysql.connect, **accounts, on_connect=["SET SESSION innodb_lock_wait_timeout = 1"]
    )

    def unit(c: Any) -> None:
        runs["unit"] += 1
        cur = c.cursor()
        cur.execute("INSERT INTO acc VALUES (%s, 0)", (10 + runs["unit"],))  # rolled back
        cur.execute("UPDATE acc SET n = n + 1 WHERE id = 1")  # 1205 while blocked

    try:
        resilient_dbapi.run_transaction(conn, unit)
    finally:
        release.join()
        blocker.close()
    assert runs["unit"] >= 2
    # The first run's INSERT was rolled back with it (MySQL keeps the transaction after
    # a 1205: committing it would have kept a half-done unit).
    assert rows(server, accounts, "SELECT id, n FROM acc ORDER BY id") == [
        (1, 11),
        (2, 0),
        (10 + runs["unit"], 0),
    ]
    conn.close()


def test_other_errors_roll_back_and_are_raised_at_once(
    server: Any, accounts: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **accounts)
    runs = Counter[str]()

    def unit(c: Any) -> None:
        runs["unit"] += 1
        c.cursor().execute("UPDATE acc SET n = 5 WHERE id = 2")
        c.cursor().execute("INSERT INTO acc VALUES (1, 0)")  # duplicate key

    with pytest.raises(pymysql.err.IntegrityError):
        resilient_dbapi.run_transaction(conn, unit)
    assert runs["unit"] == 1
    assert rows(server, accounts, "SELECT n FROM acc WHERE id = 2") == [(0,)]
    conn.close()


def test_it_gives_up_when_the_policy_says_so(server: Any, db: dict[str, Any]) -> None:
    admin, runs = server.admin(), Counter[str]()
    conn = resilient_dbapi.connect(pymysql.connect, **db)

    def unit(c: Any) -> None:
        runs["unit"] += 1
        c.cursor().execute("INSERT INTO t (uid) VALUES ('never')")
        kill_connection(admin, c.thread_id())
        c.cursor().execute("INSERT INTO t (uid) VALUES ('never')")

    retry = RetryOnError(attempts=3, deadline=None, backoff=0.01)
    with pytest.raises(TransactionLostError):
        resilient_dbapi.run_transaction(conn, unit, retry=retry)
    assert runs["unit"] == 3
    assert rows(server, db, "SELECT COUNT(*) FROM t") == [(0,)]
    conn.close()
    admin.close()


def test_bad_arguments_say_what_is_allowed(db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    with pytest.raises(TypeError, match="fn must be callable"):
        resilient_dbapi.run_transaction(conn, "not a function")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry must be a RetryOnError"):
        resilient_dbapi.run_transaction(conn, lambda c: None, retry=3)  # type: ignore[arg-type]
    conn.close()


def test_the_asyncio_twin_runs_a_unit_again_after_a_kill(server: Any, db: dict[str, Any]) -> None:
    admin, runs = server.admin(), Counter[str]()

    async def main() -> int:
        kwargs = {k: v for k, v in db.items() if k != "database"}
        conn = await aio.connect(aiomysql.connect, **kwargs, db=db["database"])
        try:

            async def unit(c: Any) -> int:
                runs["unit"] += 1
                async with c.cursor() as cur:
                    await cur.execute("INSERT INTO t (uid) VALUES ('async')")
                    if runs["unit"] == 1:
                        await asyncio.to_thread(kill_connection, admin, c.thread_id())
                    await cur.execute("INSERT INTO t (uid) VALUES ('twin')")
                return runs["unit"]

            return await aio.run_transaction(conn, unit)
        finally:
            conn.close()

    assert asyncio.run(main()) == 2
    assert rows(server, db, "SELECT uid FROM t ORDER BY uid") == [("async",), ("twin",)]
    admin.close()


@pytest.fixture
def pgkw(pg_server: Any) -> Iterator[dict[str, Any]]:
    yield from postgres_database(pg_server)


def test_psycopg_in_autocommit_mode_gets_a_real_transaction(pgkw: dict[str, Any]) -> None:
    # psycopg has no begin(): with autocommit on, each statement used to commit alone,
    # and running the unit again after a deadlock wrote its first row twice.
    conn = resilient_dbapi.connect(psycopg.connect, **pgkw, autocommit=True)
    runs = Counter[str]()

    def unit(c: Any) -> None:
        runs["unit"] += 1
        cur = c.cursor()
        cur.execute("INSERT INTO t (uid) VALUES ('once')")
        if runs["unit"] == 1:  # a deadlock, as the server reports one
            cur.execute("DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END $$")

    resilient_dbapi.run_transaction(conn, unit)
    assert runs["unit"] == 2
    assert conn.execute("SELECT COUNT(*) FROM t").fetchall() == [(1,)]
    conn.close()
