"""Safety at the edges, judged by a real MariaDB: statements that commit where a plain
write would not, and outcomes the caller must acknowledge. Each claim the proxy makes
("rolled back", "outcome unknown") is checked against what the server really kept."""

from __future__ import annotations

import asyncio
import functools
import threading
import warnings
from typing import Any

import aiomysql
import mysql.connector
import MySQLdb
import MySQLdb.converters
import pymysql
import pymysql.constants
import pymysql.converters
import pymysql.cursors
import pytest
from pymysql.constants import CLIENT

import resilient_dbapi
from resilient_dbapi import (
    OutcomeUnknownError,
    ReplayTransaction,
    SessionLostError,
    TransactionLostError,
    aio,
)
from resilient_dbapi.policies import default_policies
from resilient_dbapi.testing import FaultProxy

from .conftest import kill, rows
from .test_aio import aio_kwargs, run

pytestmark = pytest.mark.server


def _via(proxy: FaultProxy, db: dict[str, Any]) -> dict[str, Any]:
    return {**db, "host": "127.0.0.1", "port": proxy.port}


def _count(server: Any, db: dict[str, Any], uid: str) -> int:
    return int(rows(server, db, "SELECT COUNT(*) FROM t WHERE uid = %s", (uid,))[0][0])


# -- statements that commit: lost after send, the outcome is unknown, never "rolled back"


@pytest.mark.parametrize(
    "text",
    ["COMMIT AND CHAIN", "COMMIT WORK AND NO CHAIN", "COMMIT RELEASE"],
)
def test_a_commit_form_lost_after_send_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy, text: str
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('chained')")
    proxy.cut_after(text.encode())
    with pytest.raises(OutcomeUnknownError):
        cur.execute(text)
    assert _count(server, db, "chained") == 1  # committed: "rolled back" would be a lie
    conn.rollback()
    conn.close()


@pytest.mark.parametrize(
    "text",
    [
        "SET autocommit = 'ON'",
        "SET autocommit = DEFAULT",
        "SET autocommit = 2-1",
        "SET sql_mode = '', autocommit = 'on'",
    ],
)
def test_autocommit_turned_on_in_any_spelling_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy, text: str
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))  # autocommit off
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('spelt')")
    proxy.cut_after(b"autocommit")
    with pytest.raises(OutcomeUnknownError):
        cur.execute(text)
    assert _count(server, db, "spelt") == 1
    conn.rollback()
    conn.close()


def test_ddl_alone_in_its_transaction_lost_after_send_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """With autocommit off and nothing written yet, DDL is durable once run."""
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    proxy.cut_after(b"CREATE TABLE")
    with pytest.raises(OutcomeUnknownError):
        conn.cursor().execute("CREATE TABLE made_anyway (a INT)")
    tables = rows(server, db, "SHOW TABLES LIKE 'made_anyway'")
    assert tables == [("made_anyway",)]  # it exists: TransactionLostError would lie
    conn.close()


def test_a_write_lost_inside_a_transaction_is_still_rolled_back(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """The counterpart: plain DML that cannot commit keeps the stronger, proven claim,
    once the server showed the statement writes only tables it rolls back (its first
    run, 'first', did: session tracking)."""
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("first",))
    proxy.cut_after(b"second")
    with pytest.raises(TransactionLostError):
        cur.execute("INSERT INTO t (uid) VALUES (%s)", ("second",))
    assert rows(server, db, "SELECT COUNT(*) FROM t") == [(0,)]
    conn.rollback()
    conn.close()


# -- XA: a prepared branch outlives its session


@pytest.mark.parametrize("autocommit", [True, False])
def test_xa_commit_one_phase_lost_after_send_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy, autocommit: bool
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db), autocommit=autocommit)
    cur = conn.cursor()
    cur.execute("XA START 'one'")
    cur.execute("INSERT INTO t (uid) VALUES ('xa-one')")
    cur.execute("XA END 'one'")
    proxy.cut_after(b"ONE PHASE")
    with pytest.raises(OutcomeUnknownError):
        cur.execute("XA COMMIT 'one' ONE PHASE")
    assert _count(server, db, "xa-one") == 1
    conn.rollback()
    conn.close()


def _recovered(server: Any, db: dict[str, Any]) -> list[str]:
    return sorted(str(r[3], "utf-8") for r in rows(server, db, "XA RECOVER"))


def test_a_prepared_xa_branch_lost_with_its_session_is_outcome_unknown(
    server: Any, db: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("XA START 'kept'")
    cur.execute("INSERT INTO t (uid) VALUES ('xa-kept')")
    cur.execute("XA END 'kept'")
    cur.execute("XA PREPARE 'kept'")
    kill(server, conn.thread_id())
    try:
        with pytest.raises(OutcomeUnknownError):  # never "rolled back": it is still there
            cur.execute("XA COMMIT 'kept'")
        assert "kept" in _recovered(server, db)
        with pytest.raises(OutcomeUnknownError):  # until acknowledged
            cur.execute("SELECT 1")
        conn.rollback()
        cur.execute("SELECT 1")
    finally:
        rows(server, db, "XA COMMIT 'kept'")  # what the coordinator does next
    assert _count(server, db, "xa-kept") == 1
    conn.close()


# -- an unknown outcome is acknowledged before anything goes on


def test_a_commit_of_unknown_outcome_is_never_reported_done_when_tried_again(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('pending')")
    proxy.close_all()  # the COMMIT goes nowhere, but the driver cannot prove it
    with pytest.raises(OutcomeUnknownError):
        conn.commit()
    with pytest.raises(OutcomeUnknownError):
        conn.commit()  # reporting success here would claim a commit of nothing
    with pytest.raises(OutcomeUnknownError):
        cur.execute("SELECT 1")
    assert _count(server, db, "pending") == 0
    conn.rollback()  # acknowledged: the connection goes on
    cur.execute("INSERT INTO t (uid) VALUES ('after')")
    conn.commit()
    assert _count(server, db, "after") == 1
    conn.close()


def test_a_commit_of_unknown_outcome_is_never_reported_done_when_tried_again_aio(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(_via(proxy, db)))
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES ('pending')")
        proxy.close_all()
        with pytest.raises(OutcomeUnknownError):
            await conn.commit()
        with pytest.raises(OutcomeUnknownError):
            await conn.commit()
        assert _count(server, db, "pending") == 0
        await conn.rollback()
        await cur.execute("INSERT INTO t (uid) VALUES ('after')")
        await conn.commit()
        assert _count(server, db, "after") == 1
        conn.close()

    run(main())


# -- class 1: a read that is not a read (a stored function behind a built-in's name)


def _writing_function(server: Any, db: dict[str, Any], name: str) -> None:
    """A stored function ``name`` that writes a row each time it runs."""
    admin = server.admin()
    try:
        with admin.cursor() as cur:
            cur.execute(
                f"CREATE FUNCTION {db['database']}.`{name}`(x INT) RETURNS INT MODIFIES SQL DATA "
                "BEGIN INSERT INTO t (uid) VALUES ('by-function'); RETURN x; END"
            )
    finally:
        admin.close()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("now", "SELECT {db}.now(1)"),  # qualified
        ("now", "SELECT now (1)"),  # a space: MariaDB calls the stored function
        ("now", "SELECT now/**/(1)"),  # a comment, the same
        ("now", "SELECT `now`(1)"),  # quoted
        ("point", "SELECT point(1)"),  # no MariaDB built-in of that name is called
        ("pg_sleep", "SELECT 42 FROM (SELECT pg_sleep(1)) AS s"),  # PostgreSQL's only
    ],
)
def test_a_stored_function_behind_a_builtin_name_is_never_sent_twice(
    server: Any, db: dict[str, Any], proxy: FaultProxy, name: str, text: str
) -> None:
    _writing_function(server, db, name)
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db), autocommit=True)
    sql = text.format(db=db["database"])
    proxy.cut_after(sql.encode())
    with pytest.raises(OutcomeUnknownError):
        conn.cursor().execute(sql)
    assert _count(server, db, "by-function") == 1
    conn.close()


def test_a_setting_that_calls_a_stored_function_is_never_replayed(
    server: Any, db: dict[str, Any]
) -> None:
    """It used to be journaled as a plain setting, and run again on every reconnect."""
    _writing_function(server, db, "f")
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute(f"SET SESSION sql_mode = IF({db['database']}.f(1) > 0, 'ANSI', 'ANSI')")
    kill(server, conn.thread_id())
    with pytest.raises(SessionLostError, match="stored function"):
        cur.execute("SELECT 1")
    cur.execute("SELECT @@session.sql_mode")
    assert "ANSI" not in cur.fetchone()[0]  # a new session, told so, without the setting
    assert _count(server, db, "by-function") == 1
    conn.close()


def _shadow_everything(cur: Any, names: frozenset[str]) -> list[str]:
    """Create a stored function for each name it may have (quoted, so reserved words
    too) that answers 424242; the names created."""
    made = []
    for name in sorted(names):
        if not name.isidentifier():
            continue  # "match against": scanner syntax, no name
        try:
            cur.execute(f"CREATE FUNCTION `{name}`(x INT) RETURNS INT RETURN 424242")
        except pymysql.err.MySQLError:
            continue
        made.append(name)
    return made


def _answers(cur: Any, sql: str) -> Any:
    try:
        cur.execute(sql)
    except pymysql.err.MySQLError:
        return None  # a built-in with other arguments, or syntax: no stored function ran
    return cur.fetchone()[0]


def test_the_pure_builtins_are_builtins_on_the_server(server: Any, db: dict[str, Any]) -> None:
    """Let the server judge the classifier's lists: with a stored function of the same
    name in the current database, a call the classifier takes for a pure built-in never
    runs the stored function (``f(1)`` for every listed name, ``f (1)`` for the words
    that may stand before a parenthesis with a space)."""
    from resilient_dbapi import statements

    conn = pymysql.connect(**db, autocommit=True)
    try:
        with conn.cursor() as cur:
            made = _shadow_everything(cur, statements._PURE_CALLS | statements._RESERVED_CALLS)
            assert len(made) > 150  # the check ran
            stored = [
                sql
                for name in made
                for sql in ([f"SELECT {name}(1)"] if name in statements._PURE_CALLS else [])
                + ([f"SELECT {name} (1)"] if name in statements._RESERVED_CALLS else [])
                if _answers(cur, sql) == 424242
            ]
            assert stored == []
            # And the scanner marks the calls that do run a stored function.
            assert _answers(cur, "SELECT count (1)") == 424242
            assert statements.classify("SELECT count (1)") is statements.StatementKind.WRITE
    finally:
        conn.close()


# -- class 4: session state and history answered by a new session


def test_last_insert_id_after_a_reconnect_breaks_plain_pymysql(
    server: Any, db: dict[str, Any]
) -> None:
    conn = pymysql.connect(**db, autocommit=True)
    conn.cursor().execute("INSERT INTO t (uid) VALUES ('x')")
    kill(server, conn.thread_id())
    with pytest.raises(pymysql.err.OperationalError):
        conn.cursor().execute("SELECT LAST_INSERT_ID()")


@pytest.mark.parametrize(
    "history",
    ["SELECT LAST_INSERT_ID()", "SELECT @@identity", "SELECT ROW_COUNT()", "SHOW WARNINGS"],
)
def test_the_session_history_is_not_answered_by_a_new_session(
    server: Any, db: dict[str, Any], history: str
) -> None:
    """It used to answer 0, -1 or nothing, from the new session: wrong values, no error."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('x'), ('y')")
    cur.execute("SELECT CAST('1x' AS INT)")  # a warning for SHOW WARNINGS
    cur.execute("INSERT INTO t (uid) VALUES ('z')")
    kill(server, conn.thread_id())
    with pytest.raises(SessionLostError, match="history"):
        cur.execute(history)
    assert conn.stats.sessions_lost == 1
    cur.execute("INSERT INTO t (uid) VALUES ('w')")  # the new session's own history
    cur.execute("SELECT LAST_INSERT_ID()")
    assert cur.fetchone()[0] == 4
    conn.close()


_MYSQL_CONNECTS = {
    "pymysql": pymysql.connect,
    "mysqlclient": MySQLdb.connect,
    "mysql-connector": functools.partial(mysql.connector.connect, use_pure=True),
}


_LOST = {
    "pymysql": pymysql.err.OperationalError,
    "mysqlclient": MySQLdb.OperationalError,
    "mysql-connector": mysql.connector.errors.OperationalError,
}


def _ran(cur: Any, sql: str) -> Any:
    """Run ``sql`` on ``cur``; its rows read (mysql-connector's cursor reads them lazily)."""
    cur.execute(sql)
    return cur.fetchall() if cur.description is not None else None


def _session_of(cur: Any) -> int:
    return int(_ran(cur, "SELECT CONNECTION_ID()")[0][0])


@pytest.mark.parametrize("first", ["BEGIN", "SELECT 1", "UPDATE t SET uid = uid WHERE id = 0"])
@pytest.mark.parametrize("name", list(_MYSQL_CONNECTS))
def test_the_last_generated_id_is_not_answered_by_a_new_session_after_other_statements(
    server: Any, db: dict[str, Any], name: str, first: str
) -> None:
    """LAST_INSERT_ID() keeps the session's last generated id past the statements after
    it. After a silent reconnect and any other statement on the new session (a BEGIN, a
    read, a write that made no id), it used to answer 0 from the new session, no error:
    a child row written with it would point at nothing. Now refused once, nothing sent;
    the plain driver reports the loss at the first statement after the kill."""
    connect = _MYSQL_CONNECTS[name]
    plain = connect(**db, autocommit=True)
    pcur = plain.cursor()
    _ran(pcur, "INSERT INTO t (uid) VALUES ('plain')")
    kill(server, _session_of(pcur))
    with pytest.raises(_LOST[name]):  # the caller is told
        _ran(plain.cursor(), first)
    plain.close()
    conn = resilient_dbapi.connect(connect, **db, autocommit=True)
    cur = conn.cursor()
    _ran(cur, "INSERT INTO t (uid) VALUES ('x')")
    assert cur.lastrowid
    kill(server, _session_of(cur))
    _ran(cur, first)  # on a new session, silently
    assert conn.reconnects == 1
    with pytest.raises(SessionLostError, match="history"):
        _ran(cur, "SELECT LAST_INSERT_ID()")
    assert _ran(cur, "SELECT LAST_INSERT_ID()") in [((0,),), [(0,)]]  # told: the new one's
    conn.rollback()
    conn.close()


@pytest.mark.parametrize("name", list(_MYSQL_CONNECTS))
def test_an_id_the_new_session_generated_is_its_last_insert_id(
    server: Any, db: dict[str, Any], name: str
) -> None:
    """Once an insert on the new session generated an id, LAST_INSERT_ID() answers it,
    as the caller expects: nothing refused."""
    conn = resilient_dbapi.connect(_MYSQL_CONNECTS[name], **db, autocommit=True)
    cur = conn.cursor()
    _ran(cur, "INSERT INTO t (uid) VALUES ('x')")
    kill(server, _session_of(cur))
    _ran(cur, "SELECT 1")  # on a new session
    _ran(cur, "INSERT INTO t (uid) VALUES ('y')")
    made = cur.lastrowid
    _ran(cur, "SELECT 2")
    assert list(_ran(cur, "SELECT LAST_INSERT_ID()")) == [(made,)]
    assert conn.reconnects == 1 and conn.stats.sessions_lost == 0
    conn.close()


@pytest.mark.parametrize(
    "write",
    [
        "INSERT INTO t (id, uid) VALUES (100, 'explicit')",  # its reply names id 100
        "INSERT INTO t (uid) VALUES ('x') ON DUPLICATE KEY UPDATE v = v + 1",  # names id 1
        "INSERT IGNORE INTO t (uid) VALUES ('x')",
    ],
)
@pytest.mark.parametrize("name", list(_MYSQL_CONNECTS))
def test_an_insert_that_generated_no_id_leaves_the_last_id_the_old_sessions(
    server: Any, db: dict[str, Any], name: str, write: str
) -> None:
    """A write on the new session whose reply names an id it did not generate (given
    explicitly, or the row an upsert updated), or none: LAST_INSERT_ID() still asks
    about the old session's, and is refused (the server is asked; a driver's lastrowid
    would have said "generated")."""
    admin = server.admin()
    with admin.cursor() as acur:
        acur.execute(f"ALTER TABLE {db['database']}.t ADD UNIQUE (uid)")
    admin.close()
    conn = resilient_dbapi.connect(_MYSQL_CONNECTS[name], **db, autocommit=True)
    cur = conn.cursor()
    _ran(cur, "INSERT INTO t (uid) VALUES ('x')")
    kill(server, _session_of(cur))
    _ran(cur, "SELECT 1")  # on a new session
    _ran(cur, write)
    with pytest.raises(SessionLostError, match="history"):
        _ran(cur, "SELECT LAST_INSERT_ID()")
    conn.close()


@pytest.mark.parametrize("setup", ["on_connect", "journal", "journal among several"])
def test_a_last_id_the_new_sessions_set_up_made_is_never_taken_for_the_callers(
    server: Any, db: dict[str, Any], setup: str
) -> None:
    """The new session's set-up may give it a last id of its own (an ``on_connect``
    insert, a journaled ``SET identity``): nonzero, yet no insert of the caller's made
    it. LAST_INSERT_ID() asking about the old session's is refused (review of c025ffe:
    it answered the set-up's id)."""
    admin = server.admin()
    with admin.cursor() as acur:
        acur.execute(f"CREATE TABLE {db['database']}.log (id INT AUTO_INCREMENT PRIMARY KEY)")
    admin.close()
    kwargs: dict[str, Any] = {"autocommit": True}
    if setup == "on_connect":
        kwargs["on_connect"] = ["INSERT INTO log () VALUES ()"]  # makes an id
    conn = resilient_dbapi.connect(pymysql.connect, **db, **kwargs)
    cur = conn.cursor()
    if setup == "journal":
        cur.execute("SET identity = 5")
    elif setup == "journal among several":
        cur.execute("SET identity = 5, autocommit = 1")
    cur.execute("INSERT INTO t (uid) VALUES ('x')")
    kill(server, conn.thread_id())
    cur.execute("SELECT 1")  # on a new session
    cur.execute("UPDATE t SET v = v + 1")  # a write that made no id
    with pytest.raises(SessionLostError, match="history"):
        cur.execute("SELECT LAST_INSERT_ID()")
    conn.close()


def test_a_refused_last_id_question_leaves_what_the_caller_reads_of_its_statement(
    server: Any, db: dict[str, Any]
) -> None:
    """The new session is asked its last id before the caller's question; when that is
    refused, the driver still reports the caller's previous statement (affected rows)."""
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('a'), ('b'), ('c')")
    kill(server, conn.thread_id())
    cur.execute("SELECT 1")  # on a new session
    cur.execute("UPDATE t SET v = v + 1")
    assert conn.affected_rows() == 3
    with pytest.raises(SessionLostError, match="history"):
        cur.execute("SELECT LAST_INSERT_ID()")
    assert conn.affected_rows() == 3 and cur.rowcount == 3
    conn.close()


def _refs(server: Any, db: dict[str, Any]) -> None:
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE TABLE {db['database']}.refs (ref INT) ENGINE=InnoDB")
        cur.execute(f"ALTER TABLE {db['database']}.t ADD UNIQUE (uid)")
    admin.close()


def test_a_write_asking_the_replaced_sessions_history_inside_a_transaction_is_refused(
    server: Any, db: dict[str, Any]
) -> None:
    """Autocommit off: the statement that met the dead connection ran on the new session
    and failed there (a duplicate key), so a transaction is open before any statement
    succeeded on it. A write reading the old session's LAST_INSERT_ID() is then refused,
    nothing written; it must not take the fast path (review of 7fc9b32: it wrote 0)."""
    _refs(server, db)
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("a",))
    conn.commit()  # the text is learned to write only tables that roll back
    kill(server, conn.thread_id())
    with pytest.raises(pymysql.err.IntegrityError):
        cur.execute("INSERT INTO t (uid) VALUES (%s)", ("a",))  # on a new session
    assert conn.reconnects == 1
    with pytest.raises(SessionLostError, match="history"):
        cur.execute("INSERT INTO refs (ref) VALUES (LAST_INSERT_ID())")
    conn.rollback()
    conn.close()
    assert rows(server, db, "SELECT ref FROM refs") == []


def test_a_write_asking_the_replaced_sessions_history_in_a_driver_transaction_is_refused(
    server: Any, db: dict[str, Any]
) -> None:
    """mysql-connector's own start_transaction() after a reconnect: the write reading
    the old session's LAST_INSERT_ID() is refused, nothing written."""
    _refs(server, db)
    conn = resilient_dbapi.connect(_MYSQL_CONNECTS["mysql-connector"], **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('a')")
    kill(server, _session_of(cur))
    with pytest.raises(mysql.connector.errors.IntegrityError):
        cur.execute("INSERT INTO t (uid) VALUES ('a')")  # on a new session
    conn.start_transaction()
    with pytest.raises(SessionLostError, match="history"):
        cur.execute("INSERT INTO refs (ref) VALUES (LAST_INSERT_ID())")
    conn.rollback()
    conn.close()
    assert rows(server, db, "SELECT ref FROM refs") == []


def test_the_last_generated_id_is_not_answered_by_a_new_session_after_other_statements_aio(
    server: Any, db: dict[str, Any]
) -> None:
    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db), autocommit=True)
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES ('x')")
        kill(server, conn.thread_id())
        await cur.execute("SELECT 1")  # on a new session, silently
        await cur.fetchall()
        with pytest.raises(SessionLostError, match="history"):
            await cur.execute("SELECT LAST_INSERT_ID()")
        await cur.execute("INSERT INTO t (uid) VALUES ('y')")
        made = cur.lastrowid
        await cur.execute("SELECT LAST_INSERT_ID()")
        assert await cur.fetchall() == ((made,),)
        conn.close()

    run(main())


def test_the_session_history_asked_in_flight_is_not_answered_by_a_new_session(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """A read of the history lost after send is a read, but not one a new session can
    answer: SessionLostError instead of the resend."""
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db), autocommit=True)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('x')")
    proxy.cut_after(b"ROW_COUNT")
    with pytest.raises(SessionLostError, match="history"):
        cur.execute("SELECT ROW_COUNT()")
    conn.close()


def test_state_set_inside_a_stored_function_is_reported_lost(
    server: Any, db: dict[str, Any]
) -> None:
    admin = server.admin()
    with admin.cursor() as acur:
        acur.execute(
            f"CREATE FUNCTION {db['database']}.remember_me() RETURNS INT "
            "BEGIN SET @kept = 42; RETURN 1; END"
        )
    admin.close()
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT remember_me()")
    kill(server, conn.thread_id())
    with pytest.raises(SessionLostError, match="stored function"):
        cur.execute("SELECT @kept")  # used to answer NULL from a new session
    conn.close()


def test_a_lock_taken_by_a_quoted_get_lock_is_reported_lost(
    server: Any, db: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT `GET_LOCK`('quoted-lock', 0)")
    assert rows(server, db, "SELECT IS_USED_LOCK('quoted-lock') IS NOT NULL") == [(1,)]
    kill(server, conn.thread_id())
    with pytest.raises(SessionLostError, match="GET_LOCK"):
        cur.execute("SELECT 1")
    conn.close()


def test_the_session_history_is_not_answered_by_a_new_session_aio(
    server: Any, db: dict[str, Any]
) -> None:
    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db), autocommit=True)
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES ('x')")
        kill(server, conn.thread_id())
        with pytest.raises(SessionLostError, match="history"):
            await cur.execute("SELECT LAST_INSERT_ID()")
        conn.close()

    run(main())


# -- class 7: a LOAD DATA LOCAL INFILE upload cut mid-file


def _upload(tmp_path: Any) -> str:
    """A file big enough that PyMySQL is still sending it when the cut reaches it."""
    path = tmp_path / "upload.csv"
    with path.open("w") as f:
        f.writelines(f"before-{i}\n" for i in range(1000))
        f.write("CUT-HERE\n")
        f.writelines(f"after-{i}\n" for i in range(3_000_000))
    return str(path)


def _load_data(server: Any, db: dict[str, Any], proxy: FaultProxy, conn: Any, path: str) -> None:
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute("SET GLOBAL local_infile = 1")
    admin.close()
    proxy.cut_after(b"CUT-HERE")
    conn.cursor().execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE t (uid)")


def test_a_cut_upload_breaks_plain_pymysql_with_a_bare_attribute_error(
    server: Any, db: dict[str, Any], proxy: FaultProxy, tmp_path: Any
) -> None:
    conn = pymysql.connect(**_via(proxy, db), local_infile=True, autocommit=True)
    with pytest.raises(AttributeError):
        _load_data(server, db, proxy, conn, _upload(tmp_path))


def test_a_cut_upload_is_the_drivers_error_of_unknown_outcome_never_sent_again(
    server: Any, db: dict[str, Any], proxy: FaultProxy, tmp_path: Any
) -> None:
    seen: list[Any] = []
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **_via(proxy, db),
        local_infile=True,
        autocommit=True,
        listeners=[seen.append],
    )
    with pytest.raises(OutcomeUnknownError) as info:
        _load_data(server, db, proxy, conn, _upload(tmp_path))
    assert isinstance(info.value, pymysql.err.OperationalError) and info.value.args[0] == 2013
    assert [
        type(e).__name__ for e in seen if type(e).__name__ in ("OutcomeUnknown", "Retrying")
    ] == ["OutcomeUnknown"]
    assert _count(server, db, "after-2999999") == 0  # the rest of the file never went out
    conn.cursor().execute("SELECT 1")
    conn.close()


# -- class 6: the guard covers an unbuffered result until it is read or closed

ROWS = "SELECT seq FROM seq_1_to_20000"


def _read_while_another_thread_runs_a_statement(conn: Any, other: Any) -> tuple[int, Any]:
    """Read ROWS through an unbuffered cursor of ``conn``; between two fetches another
    thread runs a statement on ``other`` (the same connection, or a cursor of it)."""
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute(ROWS)
    got = 1 if cur.fetchone() is not None else 0
    outcome: list[Any] = []

    def intruder() -> None:
        try:
            # PyMySQL warns the intruder (not the reader) as it drains the other's rows.
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                other.cursor().execute("SELECT 1")
            outcome.append("sent")
        except Exception as exc:  # what the intruding thread saw
            outcome.append(exc)

    thread = threading.Thread(target=intruder)
    thread.start()
    thread.join()
    got += sum(1 for _ in iter(cur.fetchone, None))
    cur.close()
    return got, outcome[0]


def test_another_thread_drains_an_unbuffered_result_with_plain_pymysql(
    db: dict[str, Any],
) -> None:
    conn = pymysql.connect(**db)
    got, outcome = _read_while_another_thread_runs_a_statement(conn, conn)
    assert outcome == "sent" and got < 20000  # the reader silently lost rows
    conn.close()


def test_the_guard_covers_an_unbuffered_result_until_it_is_read(db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    got, outcome = _read_while_another_thread_runs_a_statement(conn, conn)
    assert got == 20000
    assert isinstance(outcome, resilient_dbapi.ConcurrentUseError)
    assert "unbuffered result" in str(outcome)
    # Read to the end: the connection is anyone's again.
    thread = threading.Thread(target=lambda: conn.cursor().execute("SELECT 1"))
    thread.start()
    thread.join()
    # The reader's own statement drains its result, as the driver's would.
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute(ROWS)
    cur.fetchone()
    other = conn.cursor()
    with pytest.warns(UserWarning, match="unbuffered result was left incomplete"):
        other.execute("SELECT 2")
    assert other.fetchone() == (2,)
    assert conn._streamer is None
    conn.close()


def test_the_guard_covers_an_unbuffered_result_across_tasks(db: dict[str, Any]) -> None:
    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db))
        cur = await conn.cursor(aiomysql.SSCursor)
        await cur.execute(ROWS)
        got = 1 if await cur.fetchone() is not None else 0

        async def intruder() -> None:
            await (await conn.cursor()).execute("SELECT 1")

        with pytest.raises(resilient_dbapi.ConcurrentUseError, match="unbuffered result"):
            await asyncio.create_task(intruder())
        while await cur.fetchone() is not None:
            got += 1
        assert got == 20000
        await asyncio.create_task(intruder())  # read to the end: free again
        conn.close()

    run(main())


# -- class 2: writes the server cannot roll back (MyISAM) inside a lost transaction


def _myisam(server: Any, db: dict[str, Any]) -> None:
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE TABLE {db['database']}.m (uid VARCHAR(64)) ENGINE=MyISAM")
    admin.close()


@pytest.mark.parametrize("innodb_first", [True, False], ids=["with-innodb", "myisam-only"])
def test_a_lost_transaction_that_wrote_myisam_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy, innodb_first: bool
) -> None:
    """The server keeps the MyISAM row when the connection goes: "rolled back, run it
    again" would write it twice. The server says so itself (session tracking)."""
    _myisam(server, db)
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    if innodb_first:
        cur.execute("INSERT INTO t (uid) VALUES ('innodb')")
    cur.execute("INSERT INTO m (uid) VALUES ('kept')")
    proxy.cut_after(b"third")
    with pytest.raises(OutcomeUnknownError):
        cur.execute("INSERT INTO t (uid) VALUES ('third')")
    assert rows(server, db, "SELECT COUNT(*) FROM m") == [(1,)]  # kept by the server
    assert rows(server, db, "SELECT COUNT(*) FROM t") == [(0,)]
    with pytest.raises(OutcomeUnknownError):  # until acknowledged
        cur.execute("SELECT 1")
    conn.rollback()
    cur.execute("SELECT 1")
    conn.close()


def test_a_transaction_on_innodb_alone_is_still_provably_rolled_back_after_myisam_work(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """The MyISAM write of an earlier, committed transaction does not weaken the claim."""
    _myisam(server, db)
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO m (uid) VALUES ('earlier')")
    conn.commit()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("first",))
    proxy.cut_after(b"second")
    with pytest.raises(TransactionLostError):
        cur.execute("INSERT INTO t (uid) VALUES (%s)", ("second",))
    conn.rollback()
    conn.close()


def test_a_lost_transaction_that_wrote_myisam_is_outcome_unknown_aio(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    _myisam(server, db)

    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(_via(proxy, db)))
        cur = await conn.cursor()
        await cur.execute("INSERT INTO m (uid) VALUES ('kept')")
        proxy.cut_after(b"third")
        with pytest.raises(OutcomeUnknownError):
            await cur.execute("INSERT INTO t (uid) VALUES ('third')")
        await conn.rollback()
        conn.close()

    run(main())
    assert rows(server, db, "SELECT COUNT(*) FROM m") == [(1,)]


# -- class 2, every reply counted: a write the server kept is named wherever it is


def _admin_run(server: Any, *statements: str) -> None:
    admin = server.admin()
    with admin.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    admin.close()


def _lose_learned_insert(cur: Any, proxy: FaultProxy) -> type[BaseException]:
    """Send the text learned as rolling back (it ran before in this transaction) and
    lose its reply: which claim the caller gets."""
    proxy.cut_after(b"'lost'")
    with pytest.raises((TransactionLostError, OutcomeUnknownError)) as info:
        cur.execute("INSERT INTO t (uid) VALUES (%s)", ("lost",))
    # The raised class also derives from the driver's own (OperationalError).
    return TransactionLostError if info.errisinstance(TransactionLostError) else OutcomeUnknownError


@pytest.mark.parametrize(
    "kept_write",
    ["executemany", "returning", "failed-multirow", "procedure-with-results"],
)
def test_a_kept_write_named_in_any_reply_makes_the_loss_of_unknown_outcome(
    server: Any, db: dict[str, Any], proxy: FaultProxy, kept_write: str
) -> None:
    """The server names a MyISAM write only in the reply of the statement that made it
    (an executemany's first query, a procedure's last result), never after a result set
    (INSERT ... RETURNING) or an error (a multi-row INSERT that failed half-way): the
    rows it kept make "rolled back, run it again" a lie."""
    name = db["database"]
    _admin_run(
        server,
        f"CREATE TABLE {name}.m (uid VARCHAR(64) PRIMARY KEY) ENGINE=MyISAM",
        f"INSERT INTO {name}.m VALUES ('a'), ('b'), ('dup')",
        f"CREATE PROCEDURE {name}.p() BEGIN SELECT 1; INSERT INTO m VALUES ('p'); SELECT 2; END",
    )
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("first",))  # learned: InnoDB only
    if kept_write == "executemany":  # one query per row: only the first names the write
        cur.executemany("UPDATE m SET uid = %s WHERE uid = %s", [("a2", "a"), ("b2", "b")])
    elif kept_write == "returning":
        cur.execute("INSERT INTO m (uid) VALUES ('r') RETURNING uid")
        assert cur.fetchall() == (("r",),)
    elif kept_write == "failed-multirow":
        with pytest.raises(pymysql.err.IntegrityError):
            cur.execute("INSERT INTO m VALUES ('new'), ('dup')")
    else:
        cur.execute("CALL p()")
        while cur.nextset():
            pass
    before = rows(server, db, "SELECT uid FROM m ORDER BY uid")
    assert _lose_learned_insert(cur, proxy) is OutcomeUnknownError
    # The server kept the MyISAM change; of t, nothing (the claim is the weaker one).
    assert rows(server, db, "SELECT uid FROM m ORDER BY uid") == before
    assert before != [("a",), ("b",), ("dup",)]
    assert _count(server, db, "first") == 0
    conn.rollback()
    conn.close()


def test_a_kept_write_in_an_executemany_is_named_aio(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    name = db["database"]
    _admin_run(
        server,
        f"CREATE TABLE {name}.m (uid VARCHAR(64) PRIMARY KEY) ENGINE=MyISAM",
        f"INSERT INTO {name}.m VALUES ('a'), ('b')",
    )

    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(_via(proxy, db)))
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES (%s)", ("first",))
        await cur.executemany("UPDATE m SET uid = %s WHERE uid = %s", [("a2", "a"), ("b2", "b")])
        proxy.cut_after(b"'lost'")
        with pytest.raises(OutcomeUnknownError):
            await cur.execute("INSERT INTO t (uid) VALUES (%s)", ("lost",))
        await conn.rollback()
        conn.close()

    run(main())
    assert rows(server, db, "SELECT uid FROM m ORDER BY uid") == [("a2",), ("b2",)]


def test_row_locks_keep_a_lost_transaction_provably_rolled_back(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """SELECT ... FOR UPDATE answers with a result set (no word from the server) but
    writes no table: the claim stays "rolled back"."""
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("first",))
    cur.execute("SELECT uid FROM t WHERE uid = %s FOR UPDATE", ("first",))
    assert _lose_learned_insert(cur, proxy) is TransactionLostError
    assert rows(server, db, "SELECT COUNT(*) FROM t") == [(0,)]
    conn.rollback()
    conn.close()


@pytest.mark.parametrize("where", ["on_connect", "statement", "a-form-read-as-a-write"])
def test_the_callers_own_tracking_setting_is_not_relied_on(
    server: Any, db: dict[str, Any], proxy: FaultProxy, where: str
) -> None:
    """Turned off by the caller, the server names no kept write: silence proves nothing.
    ``SET @@session.… := 'OFF'`` reads as a write to the scanner: it counts all the same."""
    _myisam(server, db)
    off = "SET SESSION session_track_transaction_info = OFF"
    on_connect = [off] if where == "on_connect" else None
    conn = resilient_dbapi.connect(pymysql.connect, on_connect=on_connect, **_via(proxy, db))
    cur = conn.cursor()
    if where == "statement":
        cur.execute(off)
    elif where == "a-form-read-as-a-write":
        cur.execute("SET @@session.session_track_transaction_info := 'OFF', @mark := 1")
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("first",))
    cur.execute("INSERT INTO m (uid) VALUES ('kept')")
    assert _lose_learned_insert(cur, proxy) is OutcomeUnknownError
    assert rows(server, db, "SELECT COUNT(*) FROM m") == [(1,)]
    conn.rollback()
    conn.close()


@pytest.mark.parametrize(
    "change",
    ["alter-engine", "use-another-database", "use-among-several-statements", "callproc-alters"],
)
def test_a_learned_text_is_not_trusted_after_its_tables_may_have_changed(
    server: Any, db: dict[str, Any], proxy: FaultProxy, change: str
) -> None:
    """A text seen to write InnoDB writes MyISAM after ALTER TABLE ... ENGINE=MyISAM, or
    after USE of a database where ``t`` is MyISAM: lost there, its row stays. So too
    when the scanner cannot see the change: a ``USE`` among several statements in one
    text, DDL run by a procedure called through ``callproc``."""
    name = db["database"]
    other = name + "_other"
    _admin_run(
        server,
        f"CREATE DATABASE {other}",
        f"CREATE TABLE {other}.t (uid VARCHAR(64)) ENGINE=MyISAM",
        f"CREATE PROCEDURE {name}.to_myisam() ALTER TABLE t ENGINE=MyISAM",
    )
    several = pymysql.constants.CLIENT.MULTI_STATEMENTS
    try:
        conn = resilient_dbapi.connect(pymysql.connect, client_flag=several, **_via(proxy, db))
        cur = conn.cursor()
        cur.execute("INSERT INTO t (uid) VALUES (%s)", ("first",))  # learned: InnoDB
        conn.commit()
        where = {**db, "database": other} if change.startswith("use") else db
        if change == "alter-engine":
            cur.execute("ALTER TABLE t ENGINE=MyISAM")
        elif change == "callproc-alters":
            cur.callproc("to_myisam")
        elif change == "use-another-database":
            cur.execute(f"USE {other}")
        else:
            cur.execute(f"USE {other}; SELECT 1")
            while cur.nextset():
                pass
            conn.commit()  # nothing of it is open: only the USE lasts
        proxy.cut_after(b"'lost'")
        with pytest.raises(OutcomeUnknownError):  # the first write of a new transaction
            cur.execute("INSERT INTO t (uid) VALUES (%s)", ("lost",))
        assert rows(server, where, "SELECT COUNT(*) FROM t WHERE uid = 'lost'") == [(1,)]
        conn.rollback()
        conn.close()
    finally:
        _admin_run(server, f"DROP DATABASE {other}")


@pytest.mark.parametrize("how", ["init_command", "on_connect"])
def test_a_lost_commit_that_would_have_chained_by_the_servers_default_needs_rollback(
    server: Any, db: dict[str, Any], proxy: FaultProxy, how: str
) -> None:
    """``completion_type = CHAIN`` set where the proxy sees no statement of the caller's
    (the driver's ``init_command``, ``on_connect``, the server's configuration): COMMIT
    opens the next transaction, which a new session would not have; the writes after it
    would each commit alone. Asked once, it makes a lost COMMIT TransactionLostError."""
    chain = "SET SESSION completion_type = 'CHAIN'"
    kwargs: dict[str, Any] = {**_via(proxy, db), "autocommit": True}
    on_connect = None
    if how == "init_command":
        kwargs["init_command"] = chain
    else:
        on_connect = [chain]
    conn = resilient_dbapi.connect(pymysql.connect, on_connect=on_connect, **kwargs)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    proxy.cut_after(b"COMMIT")
    with pytest.raises(TransactionLostError):
        conn.commit()
    with pytest.raises(TransactionLostError):  # until acknowledged
        cur.execute("INSERT INTO t (uid) VALUES ('after')")
    conn.rollback()
    cur.execute("SELECT 1")
    conn.close()
    assert _count(server, db, "after") == 0


@pytest.mark.parametrize(
    ("table", "claim"),
    [("t", TransactionLostError), ("tr", OutcomeUnknownError), ("v", OutcomeUnknownError)],
    ids=["innodb", "innodb-with-a-trigger-writing-myisam", "a-view"],
)
def test_a_write_answered_with_rows_is_judged_by_what_the_server_says_of_its_table(
    server: Any, db: dict[str, Any], proxy: FaultProxy, table: str, claim: type[Exception]
) -> None:
    """INSERT ... RETURNING (Django's every insert on MariaDB) gets no word on the tables
    it wrote: the server is asked once, before it, whether its table rolls back whole
    (InnoDB, no trigger, not a view); lost in flight, the claim follows the answer."""
    name = db["database"]
    _admin_run(
        server,
        f"CREATE TABLE {name}.m (uid VARCHAR(64)) ENGINE=MyISAM",
        f"CREATE TABLE {name}.tr (uid VARCHAR(64)) ENGINE=InnoDB",
        f"CREATE TRIGGER {name}.tr_audit AFTER INSERT ON {name}.tr FOR EACH ROW "
        "INSERT INTO m VALUES (NEW.uid)",
        f"CREATE VIEW {name}.v AS SELECT uid FROM {name}.t",
    )
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    returning = f"INSERT INTO `{table}` (uid) VALUES (%s) RETURNING uid"
    cur.execute(returning, ("first",))
    assert cur.fetchall() == (("first",),)
    proxy.cut_after(b"'lost'")
    with pytest.raises((TransactionLostError, OutcomeUnknownError)) as info:
        cur.execute(returning, ("lost",))  # its first run was answered with rows too
    assert info.errisinstance(claim)
    kept = rows(server, db, "SELECT uid FROM m ORDER BY uid")
    assert kept == ([("first",), ("lost",)] if table == "tr" else [])
    assert rows(server, db, "SELECT COUNT(*) FROM t") == [(0,)]
    conn.rollback()
    conn.close()


def test_a_write_refused_half_way_in_a_transaction_begun_with_autocommit_on_is_counted(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """``begin()`` on an autocommit connection opens the transaction as surely as
    autocommit off: the MyISAM rows a refused multi-row INSERT kept stay when it is lost."""
    name = db["database"]
    _admin_run(
        server,
        f"CREATE TABLE {name}.m (uid VARCHAR(64) PRIMARY KEY) ENGINE=MyISAM",
        f"INSERT INTO {name}.m VALUES ('dup')",
    )
    conn = resilient_dbapi.connect(pymysql.connect, autocommit=True, **_via(proxy, db))
    cur = conn.cursor()
    conn.begin()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("first",))  # learned: InnoDB only
    with pytest.raises(pymysql.err.IntegrityError):
        cur.execute("INSERT INTO m VALUES ('new'), ('dup')")
    assert _lose_learned_insert(cur, proxy) is OutcomeUnknownError
    assert rows(server, db, "SELECT uid FROM m ORDER BY uid") == [("dup",), ("new",)]
    assert _count(server, db, "first") == 0
    conn.rollback()
    conn.close()


def test_a_completion_type_the_server_will_not_tell_makes_every_end_chain(
    server: Any, db: dict[str, Any], proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The question is a courtesy of the server: refused, the connection still opens,
    and an end lost in flight is judged as one that may have chained (the weaker claim)."""
    from resilient_dbapi.adapters.pymysql import PyMySQLAdapter

    def refuse(self: Any, raw: Any) -> bool:
        raise pymysql.err.OperationalError(1227, "Access denied")

    monkeypatch.setattr(PyMySQLAdapter, "completion_chains", refuse)
    conn = resilient_dbapi.connect(pymysql.connect, autocommit=True, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("SELECT 1")
    proxy.cut_after(b"COMMIT")
    with pytest.raises(TransactionLostError):  # it may have opened the next one
        conn.commit()
    conn.rollback()
    cur.execute("SELECT 1")
    conn.close()


def test_a_table_question_refused_is_asked_once_and_answers_perhaps(
    server: Any, db: dict[str, Any], proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question the server refuses is not asked before every write: the answer is
    "perhaps kept", and a lost write of that table is of unknown outcome."""
    from resilient_dbapi.adapters.pymysql import PyMySQLAdapter

    asked: list[tuple[str, str]] = []

    def refuse(self: Any, raw: Any, database: str, name: str) -> bool:
        asked.append((database, name))
        raise pymysql.err.OperationalError(1142, "SELECT command denied")

    monkeypatch.setattr(PyMySQLAdapter, "table_rolls_back", refuse)
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    returning = "INSERT INTO t (uid) VALUES (%s) RETURNING uid"
    cur.execute(returning, ("first",))
    cur.execute(returning, ("second",))
    proxy.cut_after(b"'lost'")
    with pytest.raises(OutcomeUnknownError):
        cur.execute(returning, ("lost",))
    assert asked == [("", "t")]
    conn.rollback()
    conn.close()


def test_a_connection_lost_with_the_table_question_never_sent_the_write(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """The question goes first; the connection dies with it: the write was never sent,
    so the transaction it would have joined is provably rolled back."""
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", ("first",))
    proxy.cut_after(b"information_schema")
    with pytest.raises(TransactionLostError):
        cur.execute("INSERT INTO t (uid) VALUES (%s) RETURNING uid", ("never",))
    conn.rollback()
    assert rows(server, db, "SELECT COUNT(*) FROM t") == [(0,)]
    cur.execute("INSERT INTO t (uid) VALUES (%s) RETURNING uid", ("again",))
    conn.commit()
    assert _count(server, db, "again") == 1
    conn.close()


@pytest.mark.parametrize(
    ("grant", "claim"),
    [("SELECT, INSERT", OutcomeUnknownError), ("SELECT, INSERT, TRIGGER", TransactionLostError)],
    ids=["without-trigger-privilege", "with-trigger-privilege"],
)
def test_no_trigger_is_proof_only_to_a_user_shown_every_trigger(
    server: Any, db: dict[str, Any], proxy: FaultProxy, grant: str, claim: type[Exception]
) -> None:
    """MySQL hides a table's triggers from a user without the TRIGGER privilege on it:
    "no trigger" is then no proof that nothing writes a table that keeps its rows."""
    name = db["database"]
    user = f"u_{name}"[:32]
    _admin_run(
        server,
        f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'",
        f"GRANT {grant} ON {name}.* TO '{user}'@'%'",
    )
    try:
        kwargs = {**_via(proxy, db), "user": user, "password": "pw"}
        conn = resilient_dbapi.connect(pymysql.connect, **kwargs)
        cur = conn.cursor()
        returning = "INSERT INTO t (uid) VALUES (%s) RETURNING uid"
        cur.execute(returning, ("first",))
        proxy.cut_after(b"'lost'")
        with pytest.raises((TransactionLostError, OutcomeUnknownError)) as info:
            cur.execute(returning, ("lost",))
        assert info.errisinstance(claim)
        assert rows(server, db, "SELECT COUNT(*) FROM t") == [(0,)]
        conn.rollback()
        conn.close()
    finally:
        _admin_run(server, f"DROP USER '{user}'@'%'")


@pytest.mark.parametrize(
    "ddl",
    [
        "ALTER TABLE tmp ADD c INT",  # a temporary table, named as any other
        "CREATE INDEX i ON tmp (x)",
        "DROP TABLE tmp",
        "RENAME TABLE tmp TO tmp2",
        "CREATE TABLE tmp_new (x INT)",
    ],
)
def test_ddl_counted_as_committing_ends_even_a_transaction_of_locks_only(
    server: Any, db: dict[str, Any], ddl: str
) -> None:
    """The engine takes DDL with the server's "no transaction" after it as the end of
    the transaction: the server must agree even where it reports nothing, a transaction
    holding only row locks (MariaDB's flag stays clear). Another session can then take
    the row lock at once, and the proxy treats the connection as free to replace."""
    rows(server, db, "INSERT INTO t (id, uid) VALUES (1, 'locked')")

    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db))  # autocommit off
        try:
            cur = await conn.cursor()
            await cur.execute("CREATE TEMPORARY TABLE tmp (x INT)")
            await cur.execute("SELECT * FROM t WHERE id = 1 FOR UPDATE")
            assert conn.get_transaction_status()  # a lock is held: never replaced silently
            await cur.execute(ddl)
            assert not conn.get_transaction_status()
            other = pymysql.connect(**db)
            try:
                with other.cursor() as ocur:
                    ocur.execute("SELECT id FROM t WHERE id = 1 FOR UPDATE NOWAIT")  # free
            finally:
                other.close()
        finally:
            conn.close()  # or the database's teardown would wait for the lock

    run(main())


# -- a write the driver warned of after it ran ---------------------------------------------


def _warned_insert(acc: dict[str, Any]) -> str:
    admin = pymysql.connect(autocommit=True, **acc)
    admin.cursor().execute("CREATE TABLE warned (id INT AUTO_INCREMENT PRIMARY KEY, x INT)")
    admin.close()
    # IGNORE makes the bad value a warning: the row is written, with 12.
    return "INSERT IGNORE INTO warned (x) VALUES ('12abc')"


def test_a_write_aiomysql_warned_of_is_in_the_transaction_a_loss_reports(
    server: Any, db: dict[str, Any]
) -> None:
    """With a filter making warnings errors, aiomysql raises the server's warning after
    the INSERT ran. The write is in the transaction (autocommit off): when the connection
    is then lost, commit() (sent on the dead socket) reports its outcome unknown, as plain
    aiomysql's own error does; it must not take the transaction for empty and return as
    if done, the row gone."""
    insert = _warned_insert(db)

    async def main(connect: Any) -> BaseException | None:
        conn = await connect(aiomysql.connect, **aio_kwargs(db))
        cur = await conn.cursor()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(pymysql.err.Warning, match="Data truncated"):
                await cur.execute(insert)
        kill(server, conn.thread_id())
        try:
            await conn.commit()
        except Exception as exc:
            return exc
        finally:
            conn.close()
        return None

    async def plain(_: Any, **kwargs: Any) -> Any:
        return await aiomysql.connect(**kwargs)

    assert isinstance(run(main(plain)), pymysql.err.OperationalError)  # aiomysql says so
    assert isinstance(run(main(aio.connect)), OutcomeUnknownError)
    assert rows(server, db, "SELECT x FROM warned") == []


def test_a_write_mysql_connector_warned_of_is_never_called_rolled_back(
    server: Any, db: dict[str, Any]
) -> None:
    """mysql-connector with ``get_warnings=True`` reads the server's warnings once the
    INSERT ran and warns of the first; a filter making warnings errors raises it as a
    ``UserWarning``. The write ran, in the transaction a locking read opened: when the
    connection is then lost, the transaction is neither replayed without it nor called
    rolled back (this driver shows no proof that a write rolled back; taken for a
    failure, the write was forgotten and the loss called rolled back): the next
    statement reports the outcome unknown, and the row is not committed."""
    insert = _warned_insert(db)
    conn = resilient_dbapi.connect(
        mysql.connector.connect,
        policies=[*default_policies(), ReplayTransaction()],
        use_pure=True,
        get_warnings=True,
        autocommit=False,
        **db,
    )
    cur = conn.cursor(buffered=True)
    cur.execute("SELECT CONNECTION_ID() FROM warned FOR UPDATE")
    cur.execute("SELECT CONNECTION_ID()")
    (session,) = cur.fetchone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="Data truncated"):
            cur.execute(insert)
    kill(server, session)
    with pytest.raises(OutcomeUnknownError):
        cur.execute("SELECT COUNT(*) FROM warned")
    conn.rollback()
    assert conn.stats.transactions_replayed == 0
    conn.close()


def test_a_procedure_mysql_connector_warned_of_is_never_called_rolled_back(
    server: Any, db: dict[str, Any]
) -> None:
    """The same through ``callproc()``, which raises the driver's ``InterfaceError``
    (the warning its context) for a procedure that ran: here it wrote a MyISAM table,
    which keeps the row whatever happens to the transaction. After the loss the outcome
    is unknown; called rolled back, the caller would run it again and write it twice."""
    insert = _warned_insert(db)
    admin = pymysql.connect(autocommit=True, **db)
    admin.cursor().execute("CREATE TABLE kept (x INT) ENGINE=MyISAM")
    admin.cursor().execute(
        f"CREATE PROCEDURE warns() BEGIN INSERT INTO kept VALUES (1); {insert}; END"
    )
    admin.close()
    conn = resilient_dbapi.connect(
        mysql.connector.connect, use_pure=True, get_warnings=True, autocommit=False, **db
    )
    cur = conn.cursor(buffered=True)
    cur.execute("SELECT CONNECTION_ID() FROM warned FOR UPDATE")  # a transaction opens
    cur.execute("SELECT CONNECTION_ID()")
    (session,) = cur.fetchone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(mysql.connector.InterfaceError, match="Data truncated"):
            cur.callproc("warns")
    kill(server, session)
    with pytest.raises(OutcomeUnknownError):
        cur.execute("SELECT COUNT(*) FROM warned")
    conn.rollback()
    conn.close()
    assert rows(server, db, "SELECT x FROM kept") == [(1,)]  # it ran, and is kept


def test_a_write_whose_warnings_mysql_connector_could_not_read_is_never_called_failed(
    server: Any, db: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """mysql-connector with ``get_warnings=True`` asks for the warnings of an INSERT
    that ran (autocommit: it is committed); the connection lost then, the driver raises
    its ``InterfaceError`` ("Failed getting warnings"), the plain error of a statement
    that failed. Through resilient_dbapi the outcome is reported unknown (the write is
    stored), the write is not sent again, and the next statement runs on a new
    connection."""
    insert = _warned_insert(db)
    fetch_warnings = mysql.connector.cursor.MySQLCursor._fetch_warnings
    session: list[int] = []

    def killed_first(cursor: Any) -> Any:
        kill(server, session[0])  # the server ends the session between the two
        return fetch_warnings(cursor)

    monkeypatch.setattr(mysql.connector.cursor.MySQLCursor, "_fetch_warnings", killed_first)

    def write(conn: Any) -> BaseException | None:
        cur = conn.cursor(buffered=True)
        cur.execute("SELECT CONNECTION_ID()")
        session[:] = [cur.fetchone()[0]]
        try:
            cur.execute(insert)
        except Exception as exc:
            return exc
        finally:
            session.clear()
        return None

    conn = mysql.connector.connect(use_pure=True, get_warnings=True, autocommit=True, **db)
    plain = write(conn)
    conn.close()
    assert isinstance(plain, mysql.connector.InterfaceError), plain  # as if it failed
    assert rows(server, db, "SELECT x FROM warned") == [(12,)]  # yet it is stored
    conn = resilient_dbapi.connect(
        mysql.connector.connect, use_pure=True, get_warnings=True, autocommit=True, **db
    )
    lost = write(conn)
    assert isinstance(lost, OutcomeUnknownError), lost
    assert rows(server, db, "SELECT x FROM warned") == [(12,), (12,)]  # once more, once
    cur = conn.cursor(buffered=True)
    cur.execute("SELECT COUNT(*) FROM warned")
    assert cur.fetchone() == (2,)
    assert conn.stats.reconnects == 1
    conn.close()


@pytest.mark.parametrize(
    ("how", "raised"),
    [
        ({"get_warnings": True}, UserWarning),
        ({"raise_on_warnings": True}, mysql.connector.DatabaseError),
    ],
    ids=["get_warnings", "raise_on_warnings"],
)
def test_a_setting_mysql_connector_warned_of_is_made_again_on_a_new_connection(
    server: Any, db: dict[str, Any], how: dict[str, bool], raised: type[Exception]
) -> None:
    """A setting mysql-connector warned of took: it is journaled, and made again, without
    raising again, on the connection that replaces a lost one. With
    ``raise_on_warnings=True`` the driver raises its own error for the warning (a server
    code, as for a statement that failed), from where it reads the warnings, after the
    statement ran."""
    conn = resilient_dbapi.connect(
        mysql.connector.connect, use_pure=True, autocommit=True, **how, **db
    )
    cur = conn.cursor(buffered=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(raised, match="max_sort_length"):
            cur.execute("SET SESSION max_sort_length = 1")
        cur.execute("SELECT @@SESSION.max_sort_length, CONNECTION_ID()")
        made, session = cur.fetchone()
        kill(server, session)
        cur.execute("SELECT @@SESSION.max_sort_length")
        (again,) = cur.fetchone()
    assert conn.stats.reconnects == 1
    assert made < 1024  # the server's default: the setting took
    assert again == made
    conn.close()


def test_a_write_aiomysql_warned_of_is_never_dropped_by_a_replay(
    server: Any, db: dict[str, Any]
) -> None:
    """The same warned write inside a transaction with replay on, then the connection
    lost: the write is known to have run, so no replay goes on without it (a replay that
    did not know of it committed the rest, the row silently gone). Its warning read the
    server's warnings in a statement of its own, whose reply says nothing of the tables
    written: the loss of the next write is of unknown outcome, the weaker claim."""
    insert = _warned_insert(db)

    async def main() -> None:
        conn = await aio.connect(
            aiomysql.connect, policies=[*default_policies(), ReplayTransaction()], **aio_kwargs(db)
        )
        cur = await conn.cursor()
        await conn.begin()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(pymysql.err.Warning):
                await cur.execute(insert)
        kill(server, conn.thread_id())
        with pytest.raises(OutcomeUnknownError):
            await cur.execute("INSERT INTO warned (x) VALUES (%s)", (7,))
        await conn.rollback()
        assert conn.stats.transactions_replayed == 0
        conn.close()

    run(main())
    assert rows(server, db, "SELECT x FROM warned ORDER BY id") == []


@pytest.mark.parametrize(
    ("sql", "args"),
    [
        ("SET SESSION sort_buffer_size = 65536; SET SESSION max_sort_length = 1", None),
        ("SET SESSION max_sort_length = %s", (1,)),
    ],
    ids=["the last of several", "with parameters"],
)
def test_a_setting_aiomysql_warned_of_is_made_again_on_every_new_connection(
    server: Any, db: dict[str, Any], sql: str, args: Any
) -> None:
    """A session setting the server took with a warning (1 is below max_sort_length's
    least, which it sets instead): raised after it ran, it is journaled all the same,
    and made again, without raising again, on the connection that replaces a lost one."""

    async def main() -> None:
        conn = await aio.connect(
            aiomysql.connect, client_flag=CLIENT.MULTI_STATEMENTS, **aio_kwargs(db)
        )
        cur = await conn.cursor()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(pymysql.err.Warning, match="max_sort_length"):
                await cur.execute(sql, args)
            ask = "SELECT @@SESSION.max_sort_length, @@SESSION.sort_buffer_size"
            await cur.execute(ask)
            (made,) = await cur.fetchall()
            kill(server, conn.thread_id())
            await cur.execute(ask)
            (again,) = await cur.fetchall()
        assert conn.stats.reconnects == 1
        assert made[0] < 1024  # the server's default: the setting took
        if args is None:
            assert made[1] == 65536
        assert again == made
        conn.close()

    run(main())


def test_executemany_aiomysql_warned_of_part_way_is_never_replayed(
    server: Any, db: dict[str, Any]
) -> None:
    """aiomysql runs an UPDATE's rows one statement each and stops at the first warned:
    the rest never ran. What ran is recorded as run, and the transaction is never
    replayed (its journal cannot say how far it got)."""
    _warned_insert(db)
    admin = pymysql.connect(autocommit=True, **db)
    admin.cursor().execute("INSERT INTO warned (id, x) VALUES (1, 0), (2, 0), (3, 0)")
    admin.close()

    async def main() -> None:
        conn = await aio.connect(
            aiomysql.connect, policies=[*default_policies(), ReplayTransaction()], **aio_kwargs(db)
        )
        cur = await conn.cursor()
        await conn.begin()
        update = "UPDATE IGNORE warned SET x = %s WHERE id = %s"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(pymysql.err.Warning):
                await cur.executemany(update, [("12abc", 1), ("5", 2), ("6", 3)])
        assert conn._engine.txn_writes and not conn._engine.txn_log_ok
        kill(server, conn.thread_id())
        with pytest.raises((TransactionLostError, OutcomeUnknownError)):
            await cur.execute("UPDATE warned SET x = 9 WHERE id = 3")
        await conn.rollback()
        assert conn.stats.transactions_replayed == 0
        conn.close()

    run(main())
    assert rows(server, db, "SELECT id, x FROM warned ORDER BY id") == [(1, 0), (2, 0), (3, 0)]


# -- a write whose execute() raised what is not the driver's error -------------------------


def _failing_int_decoder(value: Any) -> int:
    """A decoder of the caller's for INT columns that fails on one value (a custom
    decoder meeting data it did not expect)."""
    if value in ("666", b"666"):
        raise ValueError(f"cannot decode {value!r}")
    return int(value)


def _decoding_connect(connect: Any, db: dict[str, Any], autocommit: bool = False) -> Any:
    conv = dict(pymysql.converters.conversions)
    conv[pymysql.constants.FIELD_TYPE.LONG] = _failing_int_decoder
    return connect(conv=conv, autocommit=autocommit, **db)


def _write_that_fails_decoding(conn: Any, server: Any) -> BaseException | None:
    """In a transaction, a read, then an INSERT whose RETURNING row the caller's decoder
    fails on (the row is written; the caller goes on), the connection killed, another
    write: what it raised."""
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM t")  # the transaction opens (autocommit off)
    with pytest.raises(ValueError, match="666"):
        cur.execute("INSERT INTO t (id, uid) VALUES (666, 'decoded') RETURNING id")
    kill(server, conn.thread_id())
    try:
        cur.execute("INSERT INTO t (uid) VALUES ('after')")
        conn.commit()
    except Exception as exc:
        return exc
    return None


def test_a_write_that_raised_no_driver_error_is_counted_in_its_transaction(
    server: Any, db: dict[str, Any]
) -> None:
    """An exception not of the driver's (here the caller's decoder failing on the row an
    ``INSERT ... RETURNING`` wrote) says nothing of whether the statement ran: it did.
    When the connection is then lost, the transaction holds that write: the next
    statement reports the loss, as plain PyMySQL's own error does; it must not go on
    silently on a new connection and commit the rest of the transaction without it."""
    plain = _decoding_connect(pymysql.connect, db)
    lost = _write_that_fails_decoding(plain, server)
    assert isinstance(lost, pymysql.err.MySQLError), lost  # the caller is told
    plain.close()
    conn = _decoding_connect(functools.partial(resilient_dbapi.connect, pymysql.connect), db)
    lost = _write_that_fails_decoding(conn, server)
    assert isinstance(lost, TransactionLostError | OutcomeUnknownError), lost
    conn.rollback()
    conn.close()
    assert rows(server, db, "SELECT uid FROM t") == []  # half of it never committed
    # The same through the connection's own query(), the row read by its read_result()
    conn = _decoding_connect(functools.partial(resilient_dbapi.connect, pymysql.connect), db)
    conn.cursor().execute("SELECT COUNT(*) FROM t")
    with pytest.raises(ValueError, match="666"):
        conn.query("INSERT INTO t (id, uid) VALUES (666, 'decoded') RETURNING id")
    with pytest.raises((TransactionLostError, OutcomeUnknownError)):
        conn.cursor().execute("INSERT INTO t (uid) VALUES ('after')")
    conn.rollback()
    conn.close()
    assert rows(server, db, "SELECT uid FROM t") == []


def test_exceptions_raised_outside_a_reply_leave_the_transaction_as_it_was(
    server: Any, db: dict[str, Any]
) -> None:
    """Python's own exceptions raised where nothing was sent or read: PyMySQL's
    ``KeyError`` for a parameter's name missing, ``TypeError`` for a dict as a value, and
    ``IndexError`` for ``scroll()`` past the rows (PEP 249's): the connection and its
    transaction are kept."""
    conn = resilient_dbapi.connect(pymysql.connect, autocommit=False, **db)
    try:
        cur = conn.cursor()
        cur.execute("INSERT INTO t (uid) VALUES ('first')")
        with pytest.raises(KeyError):
            cur.execute("INSERT INTO t (uid) VALUES (%(uid)s)", {"id": 1})
        with pytest.raises(TypeError):
            cur.execute("INSERT INTO t (uid) VALUES (%s)", ({"a": 1},))
        cur.execute("SELECT uid FROM t")
        with pytest.raises(IndexError):
            cur.scroll(10)
        cur.execute("INSERT INTO t (uid) VALUES ('second')")
        conn.commit()
        assert conn.stats.reconnects == 0
    finally:
        conn.close()
    assert rows(server, db, "SELECT uid FROM t ORDER BY id") == [("first",), ("second",)]


def test_a_read_a_decoder_failed_on_leaves_no_reply_for_the_next_statement(
    server: Any, db: dict[str, Any]
) -> None:
    """PyMySQL leaves the rest of a result unread when the caller's decoder fails on a
    row: the next statement would read it as its own reply ("Packet sequence number
    wrong", an error for a statement the server ran). The connection is not used again;
    with no transaction open, the next statement runs on a new one."""
    rows(server, db, "INSERT INTO t (id, uid) VALUES (666, 'x')")
    plain = _decoding_connect(pymysql.connect, db, autocommit=True)
    cur = plain.cursor()
    with pytest.raises(ValueError, match="666"):
        cur.execute("SELECT id FROM t")
    with pytest.raises(pymysql.err.InternalError):
        cur.execute("INSERT INTO t (uid) VALUES ('plain')")
    plain.close()
    conn = _decoding_connect(
        functools.partial(resilient_dbapi.connect, pymysql.connect), db, autocommit=True
    )
    cur = conn.cursor()
    with pytest.raises(ValueError, match="666"):
        cur.execute("SELECT id FROM t")
    cur.execute("INSERT INTO t (uid) VALUES ('resilient')")
    assert conn.stats.reconnects == 1
    conn.close()
    assert ("resilient",) in rows(server, db, "SELECT uid FROM t")


def test_a_result_set_a_decoder_failed_on_in_close_is_never_read_as_the_next_reply(
    server: Any, db: dict[str, Any]
) -> None:
    """PyMySQL's ``close()`` reads the result sets a CALL left, decoding their rows: one
    failing leaves the rest unread (plain PyMySQL then reads it as the next INSERT's
    reply, an ``InternalError`` for an INSERT the server ran). The connection is not
    used again: the transaction's loss is reported, nothing of it committed."""
    rows(server, db, "INSERT INTO t (id, uid) VALUES (666, 'x')")
    rows(server, db, "CREATE PROCEDURE two_sets() BEGIN SELECT 1; SELECT id FROM t; END")
    plain = _decoding_connect(pymysql.connect, db)
    cur = plain.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('a')")
    cur.execute("CALL two_sets()")
    with pytest.raises(ValueError, match="666"):
        cur.close()
    with pytest.raises(pymysql.err.InternalError):
        plain.cursor().execute("INSERT INTO t (uid) VALUES ('b')")
    plain.close()
    conn = _decoding_connect(functools.partial(resilient_dbapi.connect, pymysql.connect), db)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('a')")
    cur.execute("CALL two_sets()")
    with pytest.raises(ValueError, match="666"):
        cur.close()
    with pytest.raises((TransactionLostError, OutcomeUnknownError)):
        conn.cursor().execute("INSERT INTO t (uid) VALUES ('b')")
    conn.rollback()
    conn.close()
    assert rows(server, db, "SELECT uid FROM t") == [("x",)]


def test_an_unbuffered_row_a_decoder_failed_on_leaves_the_connection_in_step(
    server: Any, db: dict[str, Any]
) -> None:
    """On an unbuffered cursor the driver reads what is left of the result (without
    decoding it) before its next command: the connection is in step, and the
    transaction goes on as with plain PyMySQL."""
    rows(server, db, "INSERT INTO t (id, uid) VALUES (1, 'one'), (666, 'x'), (700, 'z')")
    conn = _decoding_connect(functools.partial(resilient_dbapi.connect, pymysql.connect), db)
    try:
        conn.cursor().execute("INSERT INTO t (uid) VALUES ('a')")
        streamed = conn.cursor(pymysql.cursors.SSCursor)
        streamed.execute("SELECT id FROM t ORDER BY id")
        with pytest.raises(ValueError, match="666"):
            streamed.fetchall()
        with pytest.warns(UserWarning, match="left incomplete"):  # PyMySQL's, as it reads it
            conn.cursor().execute("INSERT INTO t (uid) VALUES ('b')")
        conn.commit()
        assert conn.stats.reconnects == 0
    finally:
        conn.close()
    assert {"a", "b"} <= {uid for (uid,) in rows(server, db, "SELECT uid FROM t")}


def test_a_write_that_raised_no_driver_error_is_counted_in_its_transaction_aio(
    server: Any, db: dict[str, Any]
) -> None:
    """The same through aiomysql, which decodes rows as PyMySQL does."""
    conv = dict(pymysql.converters.conversions)
    conv[pymysql.constants.FIELD_TYPE.LONG] = _failing_int_decoder

    async def main() -> BaseException | None:
        conn = await aio.connect(aiomysql.connect, conv=conv, **aio_kwargs(db))  # autocommit off
        try:
            cur = await conn.cursor()
            await cur.execute("SELECT COUNT(*) FROM t")
            with pytest.raises(ValueError, match="666"):
                await cur.execute("INSERT INTO t (id, uid) VALUES (666, 'decoded') RETURNING id")
            kill(server, conn.thread_id())
            try:
                await cur.execute("INSERT INTO t (uid) VALUES ('after')")
                await conn.commit()
            except Exception as exc:
                await conn.rollback()
                return exc
            return None
        finally:
            conn.close()

    lost = run(main())
    assert isinstance(lost, TransactionLostError | OutcomeUnknownError), lost
    assert rows(server, db, "SELECT uid FROM t") == []


def test_a_write_mysqlclient_could_not_decode_is_counted_in_its_transaction(
    server: Any, db: dict[str, Any]
) -> None:
    """mysqlclient decodes a result once it stored it whole: a converter of the caller's
    failing on the row an ``INSERT ... RETURNING`` wrote leaves the connection in step,
    and the write in the transaction. When the connection is then lost, the next
    statement reports it, as mysqlclient's own error does; it must not go on on a new
    connection and commit the rest without the write."""
    conv = dict(MySQLdb.converters.conversions)
    conv[MySQLdb.constants.FIELD_TYPE.LONG] = _failing_int_decoder
    plain = MySQLdb.connect(conv=conv, autocommit=False, **db)
    lost = _write_that_fails_decoding(plain, server)
    assert isinstance(lost, MySQLdb.OperationalError), lost  # the caller is told
    plain.close()
    conn = resilient_dbapi.connect(MySQLdb.connect, conv=conv, autocommit=False, **db)
    lost = _write_that_fails_decoding(conn, server)
    assert isinstance(lost, TransactionLostError | OutcomeUnknownError), lost
    conn.rollback()
    conn.close()
    assert rows(server, db, "SELECT uid FROM t") == []
