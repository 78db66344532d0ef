"""Session state across reconnects, and the guard against shared use (real MariaDB)."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import (
    ConcurrentUseError,
    MaxAge,
    OutcomeUnknownError,
    RetryOnError,
    SessionLostError,
)
from resilient_dbapi.testing import MariaDBServer

from .conftest import SLEEP_WRITE, kill, killed_in_flight, rows

pytestmark = pytest.mark.server

SKIP_WINDOW = 0.6  # past the default skip_recent: the socket check finds the kill


def _killed(server: Any, conn: Any) -> None:
    kill(server, conn.thread_id())
    time.sleep(SKIP_WINDOW)


def test_session_settings_are_replayed_after_a_reconnect(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    cur.execute("SET SESSION sql_mode = %s", ("ANSI_QUOTES",))
    cur.execute("SET time_zone = '+05:00'")
    cur.execute("SET NAMES latin1")
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    cur.execute("USE mysql")
    cur.execute("SET autocommit = 1")
    query = (
        "SELECT @@session.sql_mode, @@session.time_zone, @@character_set_client, "
        "@@session.tx_isolation, DATABASE(), @@autocommit"
    )
    cur.execute(query)
    before = cur.fetchone()
    first = conn.thread_id()
    _killed(server, conn)
    cur.execute(query)
    assert conn.thread_id() != first
    assert (
        cur.fetchone()
        == before
        == ("ANSI_QUOTES", "+05:00", "latin1", "READ-COMMITTED", "mysql", 1)
    )


def test_plain_reconnect_would_lose_the_settings(server: Any, db: dict[str, Any]) -> None:
    """What PyMySQL's own reconnect (ping(reconnect=True)) does: the session is reset."""
    conn = pymysql.connect(**db)
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+05:00'")
    kill(server, conn.thread_id())
    with pytest.warns(DeprecationWarning):
        conn.ping(reconnect=True)
    with conn.cursor() as cur:
        cur.execute("SELECT @@session.time_zone")
        assert cur.fetchone() != ("+05:00",)


def test_the_journal_keeps_the_last_value_of_each_setting(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    for hour in range(1, 100):
        cur.execute("SET time_zone = %s", (f"+{hour % 12:02d}:00",))
    assert len(conn._engine.journal) == 1
    _killed(server, conn)
    cur.execute("SELECT @@session.time_zone")
    assert cur.fetchone() == ("+03:00",)


def test_on_connect_runs_on_every_new_connection(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(
        pymysql.connect, **db, on_connect=["SET SESSION sql_mode = 'ANSI_QUOTES'"]
    )
    cur = conn.cursor()
    cur.execute("SELECT @@session.sql_mode")
    assert cur.fetchone() == ("ANSI_QUOTES",)
    _killed(server, conn)
    cur.execute("SELECT @@session.sql_mode")
    assert cur.fetchone() == ("ANSI_QUOTES",)
    assert conn.reconnects == 1


@pytest.mark.parametrize(
    ("statement", "lost"),
    [
        ("SET @cart = 42", "user variables"),
        ("CREATE TEMPORARY TABLE scratch (a INT)", "temporary tables"),
        ("SELECT GET_LOCK('job', 1)", "GET_LOCK() locks"),
        ("PREPARE s FROM 'SELECT 1'", "prepared statements"),
        ("LOCK TABLES t WRITE", "table locks (LOCK TABLES)"),
    ],
)
def test_state_no_replay_rebuilds_raises_session_lost_once(
    server: Any, db: dict[str, Any], statement: str, lost: str
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET time_zone = '+02:00'")
    cur.execute(statement)
    _killed(server, conn)
    with pytest.raises(SessionLostError, match=re.escape(lost)) as info:
        cur.execute("SELECT @cart")
    assert isinstance(info.value, pymysql.err.OperationalError)
    assert info.value.args[0] == 2006  # "gone away": nothing was sent
    cur.execute("SELECT @cart, @@session.time_zone")  # a new session, settings replayed
    assert cur.fetchone() == (None, "+02:00")


def test_a_read_killed_in_flight_is_not_resent_into_a_new_session(
    server: Any, db: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET @step = 1")
    killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
    killer.start()
    try:
        with pytest.raises(SessionLostError, match="user variables"):
            cur.execute("SELECT SLEEP(1), @step")  # @step would read NULL on a new session
    finally:
        killer.join()
    assert conn.reconnects == 0


def test_max_age_never_recycles_a_session_holding_state(db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **db,
        autocommit=True,
        policies=[MaxAge(seconds=0.3, jitter=0), RetryOnError()],
    )
    cur = conn.cursor()
    cur.execute("SET @kept = 7")
    time.sleep(0.4)
    cur.execute("SELECT @kept")
    assert cur.fetchone() == (7,)
    assert conn.reconnects == 0


def _overlap(conn: Any) -> dict[str, Any]:
    """Thread A runs a slow query; meanwhile the main thread uses the same connection."""
    results: dict[str, Any] = {}

    def slow() -> None:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT SLEEP(0.5), 1")
                results["a"] = cur.fetchall()
        except Exception as exc:
            results["a"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 2")
            results["b"] = cur.fetchall()
    except Exception as exc:
        results["b"] = exc
    results["b_seconds"] = time.monotonic() - started
    thread.join()
    return results


def test_shared_use_corrupts_plain_pymysql(db: dict[str, Any]) -> None:
    results = _overlap(pymysql.connect(**db))
    assert isinstance(results["b"], pymysql.err.Error)  # protocol out of step


def test_shared_use_is_refused_before_anything_is_sent(db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    results = _overlap(conn)
    error = results["b"]
    assert isinstance(error, ConcurrentUseError)
    assert isinstance(error, pymysql.err.ProgrammingError)
    assert "execute in flight" in str(error)
    assert results["b_seconds"] < 0.3  # refused at once, not after the other query
    assert tuple(results["a"]) == ((0, 1),)  # the other thread's query is unharmed
    cur = conn.cursor()
    cur.execute("SELECT 3")
    assert cur.fetchone() == (3,)


def test_driver_methods_that_send_are_tracked_like_execute(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)  # autocommit off
    conn.query("INSERT INTO t (uid) VALUES ('by-query')")  # opens a transaction with writes
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.OutcomeUnknownError):  # never a silent empty commit
        conn.commit()
    with pytest.raises(resilient_dbapi.OutcomeUnknownError):  # until acknowledged
        conn.query("SELECT COUNT(*) FROM t")
    conn.rollback()
    assert conn.query("SELECT COUNT(*) FROM t") == 1
    conn.set_character_set("latin1")
    _killed(server, conn)
    cur = conn.cursor()
    cur.execute("SELECT @@character_set_client")
    assert cur.fetchone() == ("latin1",)  # replayed on the new connection
    with pytest.raises(pymysql.err.ProgrammingError, match="open already"):
        conn.connect()  # it would drop a live session


@contextlib.contextmanager
def _query_in_flight(conn: Any) -> Iterator[None]:
    """Another thread's ``SELECT SLEEP(0.5)`` on ``conn`` for the block's duration."""
    started = threading.Event()

    def slow() -> None:
        started.set()
        conn.query("SELECT SLEEP(0.5)")

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait()
    time.sleep(0.1)
    try:
        yield
    finally:
        thread.join()


def test_driver_methods_are_guarded(db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    with _query_in_flight(conn), pytest.raises(ConcurrentUseError, match="query in flight"):
        conn.show_warnings()


def test_a_refused_setting_does_not_poison_later_reconnects(
    server: Any, db: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    with pytest.raises(pymysql.err.OperationalError):
        conn.select_db("no_such_database")  # 1049: refused, so not journaled
    _killed(server, conn)
    cur = conn.cursor()
    cur.execute("SELECT DATABASE()")
    assert cur.fetchone() == (db["database"],)


def test_relative_and_default_settings_replay_in_order(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    cur.execute("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'")
    cur.execute("SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")  # builds on the first
    cur.execute("SET time_zone = '+05:00'")
    cur.execute("SET time_zone = DEFAULT")  # replaces it
    query = "SELECT @@session.sql_mode, @@session.time_zone = @@global.time_zone"
    cur.execute(query)
    before = cur.fetchone()
    assert before == ("ANSI_QUOTES,STRICT_TRANS_TABLES", 1)
    _killed(server, conn)
    cur.execute(query)
    assert cur.fetchone() == before


def test_state_lost_with_an_unknown_outcome_is_still_reported(
    server: Any, db: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("CREATE TEMPORARY TABLE scratch (a INT)")
    with killed_in_flight(server, conn.thread_id()), pytest.raises(OutcomeUnknownError):
        cur.execute(SLEEP_WRITE, ("x", "x"))
    with pytest.raises(SessionLostError, match="temporary tables"):
        cur.execute("SELECT 1")
    cur.execute("SELECT 1")
    assert conn.stats.sessions_lost == 1


def test_an_abandoned_unbuffered_cursor_is_freed_at_once(db: dict[str, Any]) -> None:
    import gc
    import weakref

    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute("SELECT seq FROM seq_1_to_100")
    assert list(cur.fetchall_unbuffered())[:2] == [(1,), (2,)]
    cur.execute("SELECT seq FROM seq_1_to_100")
    ref = weakref.ref(cur)
    gc.disable()
    try:
        del cur  # no reference cycle: the driver drains the rows here, in this thread
        assert ref() is None
    finally:
        gc.enable()
    other = conn.cursor()
    other.execute("SELECT 5")
    assert other.fetchone() == (5,)


# -- SET TRANSACTION: a setting for the next transaction only --------------------------


def test_a_pending_one_shot_setting_is_never_dropped_by_a_reconnect(
    server: Any, db: dict[str, Any]
) -> None:
    """``SET TRANSACTION READ ONLY``, then the connection dies idle: a new session
    without it would let the write through. Nothing is sent; the caller hears the
    setting is gone (it had committed the write before)."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET TRANSACTION READ ONLY")
    _killed(server, conn)
    with pytest.raises(SessionLostError, match="SET TRANSACTION"):
        cur.execute("INSERT INTO t (uid) VALUES ('ro')")
    assert rows(server, db, "SELECT uid FROM t") == []
    cur.execute("INSERT INTO t (uid) VALUES ('next')")  # a new session goes on
    assert rows(server, db, "SELECT uid FROM t") == [("next",)]
    conn.close()


@pytest.mark.parametrize(
    "one_shot",
    [
        "/* why */ SET TRANSACTION READ ONLY",
        "--\nSET TRANSACTION READ ONLY",
        "SET @@tx_read_only = 1",
    ],
    ids=["commented", "line comment", "@@-variable"],
)
def test_a_one_shot_setting_is_not_journaled_in_any_form(
    server: Any, db: dict[str, Any], one_shot: str
) -> None:
    """Spent by its transaction; a journal holding it made every transaction after a
    reconnect read only (the next write refused, 1792)."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute(one_shot)
    conn.begin()
    cur.execute("SELECT COUNT(*) FROM t")
    conn.commit()
    _killed(server, conn)
    cur.execute("INSERT INTO t (uid) VALUES ('after')")
    assert rows(server, db, "SELECT uid FROM t") == [("after",)]
    conn.close()


def test_the_transaction_a_one_shot_setting_shaped_takes_it_when_lost(
    server: Any, db: dict[str, Any]
) -> None:
    """The setting went with the lost transaction it shaped: after rollback(), the next
    statement runs on a new session (no SessionLostError for what was spent)."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    conn.begin()
    cur.execute("INSERT INTO t (uid) VALUES ('lost')")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("INSERT INTO t (uid) VALUES ('lost too')")
    conn.rollback()
    cur.execute("INSERT INTO t (uid) VALUES ('next')")
    assert rows(server, db, "SELECT uid FROM t") == [("next",)]
    conn.close()


def test_autocommit_on_leaves_a_pending_one_shot_setting_pending(
    server: Any, db: dict[str, Any]
) -> None:
    """``autocommit(True)`` commits what was open but not the setting (the server keeps
    it): a connection lost after it is not silently replaced without it."""
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    cur.execute("SET TRANSACTION READ ONLY")
    conn.autocommit(True)
    _killed(server, conn)
    with pytest.raises(SessionLostError, match="SET TRANSACTION"):
        cur.execute("INSERT INTO t (uid) VALUES ('ro')")
    assert rows(server, db, "SELECT uid FROM t") == []
    conn.close()


# -- SET insert_id: the next generated id, taken by the insert that generates one -------


@pytest.mark.parametrize(
    "setting",
    [
        "SET insert_id = 100",
        "SET @@session . insert_id = 100",  # review of 54d6ab8: spaces around the dot
        "SET @@session./* c */insert_id = 100",
        "SET insert_id = @@auto_increment_increment * 100",  # computed: another key
    ],
)
def test_a_set_insert_id_a_write_took_is_not_replayed(
    server: Any, db: dict[str, Any], setting: str
) -> None:
    """The insert took 100 and the server forgot it. Replayed on a new session, the next
    insert took 100 again: a duplicate key (or, were row 100 gone, a row the caller's
    session would never have written under that id). Whether a write took it cannot be
    told: the caller hears the session is lost, nothing is sent, and the next statement
    runs on a new session with the table's own next id."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute(setting)
    cur.execute("INSERT INTO t (uid) VALUES ('took it')")
    assert cur.lastrowid == 100
    _killed(server, conn)
    with pytest.raises(SessionLostError, match="insert_id"):
        cur.execute("INSERT INTO t (uid) VALUES ('lost')")
    cur.execute("INSERT INTO t (uid) VALUES ('next')")
    assert rows(server, db, "SELECT id, uid FROM t ORDER BY id") == [
        (100, "took it"),
        (101, "next"),
    ]
    conn.close()


def test_without_resilient_dbapi_the_set_insert_id_dies_with_the_session(
    server: Any, db: dict[str, Any]
) -> None:
    """The same scenario on PyMySQL alone: the statement after the kill fails."""
    conn = pymysql.connect(**db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET insert_id = 100")
    cur.execute("INSERT INTO t (uid) VALUES ('took it')")
    _killed(server, conn)
    with pytest.raises(pymysql.OperationalError):
        cur.execute("INSERT INTO t (uid) VALUES ('lost')")
    conn.close()


@pytest.mark.parametrize(
    "between", [None, "SELECT COUNT(*) FROM t", "SET time_zone = '+00:00'"], ids=str
)
def test_a_set_insert_id_no_write_could_take_is_replayed(
    server: Any, db: dict[str, Any], between: str | None
) -> None:
    """Lost before any write: the value still waited, and the new session gets it."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET insert_id = 100")
    if between is not None:
        cur.execute(between)
        cur.fetchall()
    _killed(server, conn)
    cur.execute("INSERT INTO t (uid) VALUES ('replayed')")
    assert cur.lastrowid == 100
    assert rows(server, db, "SELECT id, uid FROM t") == [(100, "replayed")]
    conn.close()


def test_a_write_the_server_refused_may_have_taken_the_set_insert_id(
    server: Any, db: dict[str, Any]
) -> None:
    """The first row took 100, the second failed: nothing written, and the server forgot
    the value all the same. Replayed, the next insert would take 100 where the caller's
    session would have taken 101."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET insert_id = 100")
    with pytest.raises(pymysql.err.IntegrityError):  # 1048, uid cannot be null
        cur.execute("INSERT INTO t (uid) VALUES ('x'), (NULL)")
    _killed(server, conn)
    with pytest.raises(SessionLostError, match="insert_id"):
        cur.execute("INSERT INTO t (uid) VALUES ('lost')")
    cur.execute("INSERT INTO t (uid) VALUES ('next')")
    assert rows(server, db, "SELECT id, uid FROM t") == [(101, "next")]
    conn.close()


@pytest.mark.parametrize("how", ["executemany", "callproc"])
def test_every_way_of_writing_may_take_the_set_insert_id(
    server: Any, db: dict[str, Any], how: str
) -> None:
    """executemany() and callproc() write past execute(): the value is replayed no more
    after them either (the new session's first insert takes the table's next id)."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("CREATE PROCEDURE add_row() INSERT INTO t (uid) VALUES ('called')")
    cur.execute("SET insert_id = 100")
    if how == "executemany":
        cur.executemany("INSERT INTO t (uid) VALUES (%s)", [("many",)])
    else:
        cur.callproc("add_row")
    _killed(server, conn)
    with pytest.raises(SessionLostError, match="insert_id"):
        cur.execute("INSERT INTO t (uid) VALUES ('lost')")
    cur.execute("INSERT INTO t (uid) VALUES ('next')")
    assert [row_id for row_id, _ in rows(server, db, "SELECT id, uid FROM t ORDER BY id")] == [
        100,
        101,
    ]
    conn.close()


def test_a_new_set_insert_id_replaces_the_one_in_doubt(server: Any, db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET insert_id = 100")
    cur.execute("INSERT INTO t (uid) VALUES ('a')")
    cur.execute("SET insert_id = 200")
    _killed(server, conn)
    cur.execute("INSERT INTO t (uid) VALUES ('b')")
    cur.execute("SET insert_id = 0")
    cur.execute("INSERT INTO t (uid) VALUES ('c')")
    _killed(server, conn)
    cur.execute("INSERT INTO t (uid) VALUES ('d')")
    assert rows(server, db, "SELECT id, uid FROM t ORDER BY id") == [
        (100, "a"),
        (200, "b"),
        (201, "c"),
        (202, "d"),
    ]
    conn.close()


def test_a_set_insert_id_with_other_settings_is_held_from_the_start(
    server: Any, db: dict[str, Any]
) -> None:
    """One statement, one journal entry: it could not be replayed without the id."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET insert_id = 100, time_zone = '+00:00'")
    _killed(server, conn)
    with pytest.raises(SessionLostError, match="insert_id"):
        cur.execute("INSERT INTO t (uid) VALUES ('lost')")
    cur.execute("SELECT @@time_zone")
    default = rows(server, db, "SELECT @@time_zone")
    assert list(cur.fetchall()) == default != [("+00:00",)]  # not replayed: told so
    conn.close()


# -- SET gtid_seq_no: the next binary-logged transaction's sequence number ---------------


@pytest.fixture(scope="module")
def binlog_server() -> Iterator[MariaDBServer]:
    """A MariaDB of its own that writes a binary log with strict GTIDs (as a primary
    whose binary log is replayed through mysqlbinlog would)."""
    args = ("--log-bin=mysql-bin", "--server-id=1", "--gtid-strict-mode=ON")
    with MariaDBServer(extra_args=args) as server:
        admin = server.admin()
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE g")
            cur.execute("CREATE TABLE g.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        admin.close()
        yield server


def _binlog_position(server: MariaDBServer) -> str:
    admin = server.admin()
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            return str(cur.fetchone()[0])
    finally:
        admin.close()


@pytest.mark.parametrize("resilient", [True, False], ids=["resilient_dbapi", "plain PyMySQL"])
def test_a_gtid_seq_no_a_write_took_is_not_replayed(
    binlog_server: MariaDBServer, resilient: bool
) -> None:
    """Replayed after the write took it, the SET itself was refused on every new session
    (1950: GTID out of order; without gtid_strict_mode the binary log would hold it
    twice). Now the caller hears the session is lost, and the next write takes the next
    number."""
    kwargs = binlog_server.connect_kwargs(database="g", autocommit=True)
    conn = (
        resilient_dbapi.connect(pymysql.connect, **kwargs)
        if resilient
        else pymysql.connect(**kwargs)
    )
    cur = conn.cursor()
    taken = int(_binlog_position(binlog_server).rsplit("-", 1)[1]) + 100
    cur.execute("SET gtid_seq_no = %s", (taken,))
    cur.execute("INSERT INTO t (v) VALUES (1)")
    assert _binlog_position(binlog_server) == f"0-1-{taken}"
    _killed(binlog_server, conn)
    if not resilient:
        with pytest.raises(pymysql.OperationalError):
            cur.execute("INSERT INTO t (v) VALUES (2)")
        return
    with pytest.raises(SessionLostError, match="gtid_seq_no"):
        cur.execute("INSERT INTO t (v) VALUES (2)")
    cur.execute("INSERT INTO t (v) VALUES (3)")
    assert _binlog_position(binlog_server) == f"0-1-{taken + 1}"
    conn.close()


def test_a_gtid_seq_no_no_write_took_is_not_replayed_either(binlog_server: MariaDBServer) -> None:
    """Review of bea2c95: once another session logged a later GTID, the server refuses
    the SET itself (1950); journaled, it was replayed on every new session, and every
    statement failed, reads and the SET that would clear it too. Held from the start:
    told once, then a new session without it."""
    kwargs = binlog_server.connect_kwargs(database="g", autocommit=True)
    conn = resilient_dbapi.connect(pymysql.connect, **kwargs)
    cur = conn.cursor()
    taken = int(_binlog_position(binlog_server).rsplit("-", 1)[1]) + 100
    cur.execute("SET gtid_seq_no = %s", (taken,))
    admin = binlog_server.admin()
    with admin.cursor() as other:
        other.execute("SET gtid_seq_no = %s", (taken + 5,))
        other.execute("INSERT INTO g.t (v) VALUES (0)")
    admin.close()
    _killed(binlog_server, conn)
    with pytest.raises(SessionLostError, match="gtid_seq_no"):
        cur.execute("SELECT 1")
    cur.execute("SELECT 1")
    assert cur.fetchall() == ((1,),)
    cur.execute("INSERT INTO t (v) VALUES (3)")
    assert _binlog_position(binlog_server) == f"0-1-{taken + 6}"
    conn.close()


def test_names_set_beside_a_server_wide_setting_are_not_lost_silently(
    server: Any, db: dict[str, Any]
) -> None:
    """``SET GLOBAL a = 1, NAMES latin1``: the names are the session's whatever scope
    came before (review of 7e49a2b: they were neither journaled nor held, and a new
    session answered in utf8mb4 without a word)."""
    (current,) = rows(server, db, "SELECT @@global.max_connections")[0]
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SET GLOBAL max_connections = %s, NAMES latin1", (current,))
    cur.execute("SELECT @@session.character_set_client")
    assert cur.fetchall() == (("latin1",),)
    _killed(server, conn)
    with pytest.raises(SessionLostError):
        cur.execute("SELECT @@session.character_set_client")
    conn.close()
