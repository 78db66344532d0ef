"""The safety rules against a real MariaDB: nothing lost silently, nothing applied twice."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import OutcomeUnknownError, TransactionLostError
from resilient_dbapi.testing import FaultProxy

from .conftest import kill, rows

pytestmark = pytest.mark.server


def _via(proxy: FaultProxy, db: dict[str, Any]) -> dict[str, Any]:
    return {**db, "host": "127.0.0.1", "port": proxy.port}


def _count(server: Any, db: dict[str, Any], uid: str) -> int:
    return int(rows(server, db, "SELECT COUNT(*) FROM t WHERE uid = %s", (uid,))[0][0])


def test_transaction_lost_commits_nothing(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('first-half')")
    kill(server, conn.thread_id())
    with pytest.raises(TransactionLostError) as info:
        cur.execute("INSERT INTO t (uid) VALUES ('second-half')")
    error = info.value
    assert isinstance(error, pymysql.err.OperationalError)
    assert error.args[0] in (2006, 2013)
    assert isinstance(error.__cause__, pymysql.err.OperationalError)
    # Until rollback() the rest of the transaction cannot go through on its own.
    with pytest.raises(TransactionLostError):
        cur.execute("INSERT INTO t (uid) VALUES ('third')")
    with pytest.raises(TransactionLostError):
        conn.commit()
    conn.rollback()
    assert rows(server, db, "SELECT uid FROM t") == []
    cur.execute("INSERT INTO t (uid) VALUES ('again')")
    conn.commit()
    assert rows(server, db, "SELECT uid FROM t") == [("again",)]


def test_explicit_begin_counts_as_a_transaction(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    conn.begin()
    kill(server, conn.thread_id())
    with pytest.raises(TransactionLostError):
        conn.cursor().execute("SELECT 1")
    conn.rollback()
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)


def test_read_only_transaction_recovers(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)  # autocommit off
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM t")
    kill(server, conn.thread_id())
    cur.execute("SELECT COUNT(*) FROM t")
    assert cur.fetchone() == (0,)
    assert conn.reconnects == 1


def test_write_lost_after_send_is_outcome_unknown_and_applied_once(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db), autocommit=True)
    cur = conn.cursor()
    proxy.cut_after(b"in-flight")
    with pytest.raises(OutcomeUnknownError) as info:
        cur.execute("INSERT INTO t (uid) VALUES ('in-flight')")
    assert isinstance(info.value, pymysql.err.OperationalError)
    assert info.value.args[0] == 2013
    assert proxy.cuts == 1
    assert _count(server, db, "in-flight") == 1  # applied by the server, never re-sent
    cur.execute("SELECT COUNT(*) FROM t")  # the next statement gets a new connection
    assert cur.fetchone() == (1,)


def test_naive_retry_would_have_written_twice(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """The same fault as above, with a DBUtils-style blind retry: a duplicate row."""
    kwargs = {**_via(proxy, db), "autocommit": True}
    conn = pymysql.connect(**kwargs)
    proxy.cut_after(b"in-flight")
    try:
        conn.cursor().execute("INSERT INTO t (uid) VALUES ('in-flight')")
    except pymysql.err.OperationalError:
        conn = pymysql.connect(**kwargs)
        conn.cursor().execute("INSERT INTO t (uid) VALUES ('in-flight')")
    assert _count(server, db, "in-flight") == 2


def test_commit_lost_after_send_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('committed')")
    proxy.cut_after(b"COMMIT")
    with pytest.raises(OutcomeUnknownError):
        conn.commit()
    assert _count(server, db, "committed") == 1
    conn.rollback()  # the unknown outcome acknowledged
    cur.execute("SELECT uid FROM t")
    assert cur.fetchall() == (("committed",),)


def test_write_killed_in_flight(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    thread_id = conn.thread_id()
    killer = threading.Timer(0.3, kill, (server, thread_id))
    killer.start()
    try:
        with pytest.raises(OutcomeUnknownError):
            conn.cursor().execute("INSERT INTO t (uid, v) SELECT 'slow', SLEEP(2)")
    finally:
        killer.join()
    assert _count(server, db, "slow") <= 1
    time.sleep(0.1)
    assert _count(server, db, "slow") <= 1  # and it was not sent again meanwhile


_SLOW_INSERT = "INSERT INTO t (uid, v) SELECT %s, SLEEP(%s)"


def test_write_killed_in_flight_inside_transaction(server: Any, db: dict[str, Any]) -> None:
    """Once the server showed (session tracking) that the statement writes only tables
    it rolls back, its loss in flight is the transaction's: rolled back, provably."""
    conn = resilient_dbapi.connect(pymysql.connect, **db)  # autocommit off
    cur = conn.cursor()
    cur.execute(_SLOW_INSERT, ("shown", 0))
    conn.rollback()
    killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
    killer.start()
    try:
        with pytest.raises(TransactionLostError):
            cur.execute(_SLOW_INSERT, ("slow", 2))
    finally:
        killer.join()
    conn.rollback()
    assert _count(server, db, "slow") == 0


def test_a_write_never_shown_to_roll_back_killed_in_flight_is_of_unknown_outcome(
    server: Any, db: dict[str, Any]
) -> None:
    """The first run of a statement: it may have written a table that does not roll back
    (MyISAM), which would keep its rows: not "rolled back, run it again"."""
    conn = resilient_dbapi.connect(pymysql.connect, **db)  # autocommit off
    killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
    killer.start()
    try:
        with pytest.raises(OutcomeUnknownError):
            conn.cursor().execute(_SLOW_INSERT, ("slow", 2))
    finally:
        killer.join()
    with pytest.raises(OutcomeUnknownError):  # until acknowledged
        conn.cursor().execute("SELECT 1")
    conn.rollback()
    assert _count(server, db, "slow") == 0


def test_read_killed_in_flight_is_sent_again(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
    killer.start()
    try:
        cur = conn.cursor()
        cur.execute("SELECT SLEEP(1), 42")
        assert cur.fetchone()[1] == 42
    finally:
        killer.join()
    assert conn.reconnects == 1


def test_read_killed_in_flight_breaks_plain_pymysql(server: Any, db: dict[str, Any]) -> None:
    conn = pymysql.connect(**db)
    killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
    killer.start()
    try:
        with pytest.raises(pymysql.err.OperationalError):
            conn.cursor().execute("SELECT SLEEP(1), 42")
    finally:
        killer.join()


def test_executemany_is_never_sent_again(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db), autocommit=True)
    proxy.cut_after(b"batch")
    with pytest.raises(OutcomeUnknownError):
        conn.cursor().executemany(
            "INSERT INTO t (uid, v) VALUES (%s, %s)", [("batch", 1), ("batch", 2)]
        )
    assert _count(server, db, "batch") == 2  # one multi-row INSERT, applied once


def test_writes_under_a_stream_of_kills(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    acknowledged: set[str] = set()
    unknown: set[str] = set()
    stop = threading.Event()
    kills = 0

    def killer() -> None:
        nonlocal kills
        rng = random.Random(7)
        while not stop.is_set():
            time.sleep(rng.uniform(0.005, 0.03))
            try:
                kill(server, conn.raw.thread_id(), wait=False)
                kills += 1
            except Exception:  # the connection may be between two physical sockets
                pass

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        cur = conn.cursor()
        deadline = time.monotonic() + 20
        i = 0
        while (kills < 40 or i < 300) and time.monotonic() < deadline:  # bounded
            i += 1
            uid = f"w{i}"
            try:
                cur.execute("INSERT INTO t (uid) VALUES (%s)", (uid,))
                acknowledged.add(uid)
            except OutcomeUnknownError:
                unknown.add(uid)
    finally:
        stop.set()
        thread.join()
    counts = dict(rows(server, db, "SELECT uid, COUNT(*) FROM t GROUP BY uid"))
    assert kills >= 40
    assert unknown, "no write was caught in flight: the test proved nothing"
    assert all(n == 1 for n in counts.values()), "a write was applied twice"
    assert acknowledged <= set(counts), "an acknowledged write is missing"
    assert set(counts) <= acknowledged | unknown
    assert conn.reconnects > 0


def test_commit_statement_lost_after_send_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('by-statement')")
    proxy.cut_after(b"COMMIT")
    with pytest.raises(OutcomeUnknownError):
        cur.execute("COMMIT")
    assert _count(server, db, "by-statement") == 1


def test_ddl_lost_after_send_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """The server commits the open transaction before running DDL."""
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('before-ddl')")
    proxy.cut_after(b"CREATE TABLE")
    with pytest.raises(OutcomeUnknownError):
        cur.execute("CREATE TABLE other (a INT)")
    assert _count(server, db, "before-ddl") == 1  # committed: TransactionLost would lie


def test_a_partly_applied_executemany_keeps_the_transaction_open(
    server: Any, db: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)  # autocommit off
    cur = conn.cursor()
    cur.execute("CREATE TABLE u (id INT PRIMARY KEY, v INT)")
    cur.execute("INSERT INTO u VALUES (1, 0), (2, 0)")
    conn.commit()
    with pytest.raises(pymysql.err.IntegrityError):  # row 1 updated, row 2 collides
        cur.executemany("UPDATE u SET id = %s WHERE id = %s", [(10, 1), (10, 2)])
    kill(server, conn.thread_id())
    with pytest.raises(OutcomeUnknownError):  # not a silent "recovered" commit
        conn.commit()
    assert rows(server, db, "SELECT id FROM u ORDER BY id") == [(1,), (2,)]


def _user_without_super(server: Any, database: str, user: str) -> tuple[Any, dict[str, Any]]:
    """An admin connection, and connect arguments for ``user``, who owns ``database``
    (with a table ``t``) and nothing else: read_only binds it."""
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {database}")
        cur.execute(f"CREATE TABLE {database}.t (uid VARCHAR(32) NOT NULL)")
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'")
        cur.execute(f"GRANT ALL ON {database}.* TO '{user}'@'%'")
    return admin, server.connect_kwargs(user=user, password="pw", database=database)


def test_a_commit_the_server_refused_is_never_reported_done_when_tried_again(
    own_server: Any,
) -> None:
    # MariaDB rolls the transaction back when it refuses its COMMIT (here read_only's 1290):
    # a commit() tried again must not report success with nothing committed.
    admin, kwargs = _user_without_super(own_server, "refused", "app")
    conn = resilient_dbapi.connect(pymysql.connect, **kwargs)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('refused')")
    with admin.cursor() as a:
        a.execute("SET GLOBAL read_only = 1")
    try:
        with pytest.raises(pymysql.err.OperationalError) as refused:
            conn.commit()
        assert refused.value.args[0] == 1290  # the driver's own error, unchanged
        assert not isinstance(refused.value, TransactionLostError)
        with pytest.raises(TransactionLostError):
            conn.commit()  # plain PyMySQL would report this one done
        with pytest.raises(TransactionLostError):
            cur.execute("INSERT INTO t (uid) VALUES ('into what?')")
        conn.rollback()
    finally:
        with admin.cursor() as a:
            a.execute("SET GLOBAL read_only = 0")
    assert rows(own_server, kwargs, "SELECT COUNT(*) FROM t") == [(0,)]
    cur.execute("INSERT INTO t (uid) VALUES ('again')")
    conn.commit()
    assert rows(own_server, kwargs, "SELECT uid FROM t") == [("again",)]
    conn.close()
    admin.close()


def test_plain_pymysql_reports_a_refused_commit_done_when_tried_again(own_server: Any) -> None:
    admin, kwargs = _user_without_super(own_server, "refused_plain", "plain")
    conn = pymysql.connect(**kwargs)
    conn.cursor().execute("INSERT INTO t (uid) VALUES ('refused')")
    with admin.cursor() as a:
        a.execute("SET GLOBAL read_only = 1")
    try:
        with pytest.raises(pymysql.err.OperationalError):
            conn.commit()
        conn.commit()  # "done": nothing raised
    finally:
        with admin.cursor() as a:
            a.execute("SET GLOBAL read_only = 0")
    assert rows(own_server, kwargs, "SELECT COUNT(*) FROM t") == [(0,)]  # yet nothing is there
    conn.close()
    admin.close()
