"""Result sets a statement left unread (a CALL's, several statements in one text),
against a real MariaDB: their bytes on the socket are rows, not news of the
connection's end, and a failure reading them belongs to the statement that left them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiomysql
import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import OutcomeUnknownError, SessionLostError, aio

from .conftest import kill, killed_in_flight, rows
from .drivers import DRIVERS, Driver
from .test_aio import aio_kwargs

pytestmark = pytest.mark.server
MYSQL_DRIVERS = [d for d in DRIVERS if d.server == "server"]

# The second result set is larger than PyMySQL's read buffer: part of it waits in the
# kernel, so a zero-timeout poll of the socket finds it readable.
TWO_SETS = "CREATE PROCEDURE two() BEGIN SELECT 1; SELECT REPEAT('x', 200000); END"
# The CALL is still running when its first result set comes back; the INSERT after the
# pause is its last statement.
SLOW_TAIL = (
    "CREATE PROCEDURE slow_tail() BEGIN SELECT 1; DO SLEEP(3); "
    "INSERT INTO t (uid) VALUES ('tail'); END"
)


def _connect(connect: Any, wrapped: bool, **kwargs: Any) -> Any:
    """A connection through resilient_dbapi, or the plain driver's for comparison."""
    return resilient_dbapi.connect(connect, **kwargs) if wrapped else connect(**kwargs)


def _wait_idle(server: Any, session: int) -> None:
    """Until the server has nothing more to send ``session`` (its command is Sleep)."""
    admin = server.admin()
    try:
        with admin.cursor() as cur:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cur.execute(
                    "SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = %s", (session,)
                )
                if cur.fetchone()[0] == "Sleep":
                    return
                time.sleep(0.005)
        raise TimeoutError(f"session {session} still busy after 10 s")
    finally:
        admin.close()


def _setup(cur: Any) -> None:
    cur.execute(TWO_SETS)
    cur.execute(SLOW_TAIL)
    cur.execute("CREATE TEMPORARY TABLE tt (a INT)")


@pytest.mark.parametrize("autocommit", [False, True])
@pytest.mark.parametrize("then", ["SELECT 3", "INSERT INTO tt VALUES (3)"])
@pytest.mark.parametrize("pause", [0.0, 1.2], ids=["at-once", "past-skip-window"])
def test_unread_sets_of_a_call_are_not_a_closed_connection(
    db: dict[str, Any], autocommit: bool, then: str, pause: float
) -> None:
    """Before, the socket check took the unread second set for the server's goodbye and
    replaced a healthy session (SessionLostError: the temporary table)."""
    conn = resilient_dbapi.connect(pymysql.connect, autocommit=autocommit, **db)
    cur = conn.cursor()
    _setup(cur)
    thread = conn.thread_id()
    cur.callproc("two")
    assert cur.fetchall() == ((1,),)
    time.sleep(pause)
    cur.execute(then)
    conn.commit()
    cur.execute("SELECT COUNT(*) FROM tt")
    assert cur.fetchall()[0][0] == (1 if "INSERT" in then else 0)
    assert conn.thread_id() == thread
    conn.close()


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "resilient"])
@pytest.mark.parametrize("driver", MYSQL_DRIVERS, ids=[d.name for d in MYSQL_DRIVERS])
def test_every_mysql_driver_reads_unread_sets_first(
    driver: Driver, dbkw: dict[str, Any], wrapped: bool
) -> None:
    """The same cursor runs the next statement after a CALL left a set unread: every
    driver reads the rest first, and so must the proxy (mysqlclient's ping answered
    "commands out of sync", which ended the session)."""
    kwargs = {**dbkw, "autocommit": True}
    conn = _connect(driver.connect, wrapped, **kwargs)
    cur = conn.cursor()
    cur.execute(TWO_SETS)
    cur.execute("CREATE TEMPORARY TABLE tt (a INT)")
    session = driver.session_id(conn)
    cur.callproc("two")
    time.sleep(1.2)  # past the window in which a recent read skips the socket check
    cur.execute("INSERT INTO tt VALUES (3)")
    cur.execute("SELECT COUNT(*) FROM tt")
    assert cur.fetchone()[0] == 1
    assert driver.session_id(conn) == session
    conn.close()


def test_several_statements_in_one_text_leave_no_false_alarm(db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(
        pymysql.connect,
        autocommit=True,
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
        **db,
    )
    cur = conn.cursor()
    cur.execute("CREATE TEMPORARY TABLE tt (a INT)")
    cur.execute("SELECT 1; SELECT REPEAT('x', 200000)")
    thread = conn.thread_id()
    cur.execute("INSERT INTO tt VALUES (1)")
    assert conn.thread_id() == thread
    conn.close()


@pytest.mark.parametrize("wrapped", [False, True], ids=["pymysql", "resilient"])
def test_a_call_cut_short_is_reported_not_hidden(
    server: Any, db: dict[str, Any], wrapped: bool
) -> None:
    """The connection is killed while the CALL's last statement has yet to run: the
    next statement must not succeed as if the CALL had finished. Plain PyMySQL raises
    there too; before, the proxy took the news for an idle connection's end and sent
    the SELECT on a new connection without a word. Whether the CALL's last statements
    ran is unknown (autocommit on): OutcomeUnknownError, the driver's error class."""
    connect = pymysql.connect
    conn = (
        resilient_dbapi.connect(connect, autocommit=True, **db)
        if wrapped
        else connect(autocommit=True, **db)
    )
    cur = conn.cursor()
    cur.execute(SLOW_TAIL)
    cur.callproc("slow_tail")
    assert cur.fetchall() == ((1,),)
    kill(server, conn.thread_id())
    with pytest.raises(pymysql.err.OperationalError) as info:
        cur.execute("SELECT 2")
    assert isinstance(info.value, OutcomeUnknownError) is wrapped  # the driver's class too
    assert info.value.args[0] == 2013
    assert rows(server, db, "SELECT COUNT(*) FROM t")[0][0] == 0
    if wrapped:
        # A CALL may leave session state nobody can read back: its loss is named once,
        # then the next statement gets a new connection.
        with pytest.raises(SessionLostError):
            cur.execute("SELECT 2")
        cur.execute("SELECT 2")
        assert cur.fetchall() == ((2,),)
    conn.close()


def test_a_call_cut_short_while_its_sets_are_read(server: Any, db: dict[str, Any]) -> None:
    """Nothing has come back yet when the next statement starts (the socket check finds
    the connection quiet); the connection dies while the driver waits for the CALL's
    last sets. That failure is the CALL's: the INSERT was never sent, so it must not be
    written; the CALL's own last statements may or may not have run (autocommit on)."""
    conn = resilient_dbapi.connect(pymysql.connect, autocommit=True, **db)
    cur = conn.cursor()
    cur.execute(SLOW_TAIL)
    cur.callproc("slow_tail")
    with (
        killed_in_flight(server, conn.thread_id(), after=0.5),
        pytest.raises(pymysql.err.OperationalError) as info,
    ):
        cur.execute("INSERT INTO t (uid) VALUES ('next')")
    assert isinstance(info.value, OutcomeUnknownError)
    assert "this operation was not sent" in " ".join(info.value.__notes__)  # the CALL's
    with pytest.raises(SessionLostError) as lost:
        cur.execute("INSERT INTO t (uid) VALUES ('next')")
    assert "nothing was sent" in str(lost.value)
    assert rows(server, db, "SELECT uid FROM t") == []
    cur.execute("INSERT INTO t (uid) VALUES ('next')")
    assert rows(server, db, "SELECT uid FROM t") == [("next",)]
    conn.close()


@pytest.mark.parametrize("wrapped", [False, True], ids=["pymysql", "resilient"])
def test_unread_sets_then_the_server_closes(server: Any, db: dict[str, Any], wrapped: bool) -> None:
    """Everything was sent, then the connection was killed while idle: the proxy reads
    the sets and finds the end behind them. Several statements in one text may leave
    state nobody can read back: the loss is named, nothing is sent, and the next
    statement gets a new connection. Plain PyMySQL fails and stays failed."""
    connect = pymysql.connect
    several = {"autocommit": True, "client_flag": pymysql.constants.CLIENT.MULTI_STATEMENTS}
    conn = _connect(connect, wrapped, **several, **db)
    cur = conn.cursor()
    cur.execute("SELECT 1; SELECT REPEAT('x', 200000)")
    # The kill after the server sent both (else, under load, it cuts their replies
    # short: the loss is then rightly that text's, of unknown outcome).
    _wait_idle(server, conn.thread_id())
    kill(server, conn.thread_id())
    if not wrapped:
        for _ in range(2):
            with pytest.raises(pymysql.err.MySQLError):  # 2013, then InterfaceError
                cur.execute("SELECT 2")
        return
    with pytest.raises(SessionLostError) as info:
        cur.execute("SELECT 2")
    assert "nothing was sent" in str(info.value)
    cur.execute("SELECT 2")
    assert cur.fetchall() == ((2,),)
    conn.close()


def test_a_call_in_a_transaction_then_a_write(db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    _setup(cur)
    cur.execute("INSERT INTO t (uid) VALUES ('a')")
    cur.callproc("two")
    cur.execute("INSERT INTO t (uid) VALUES ('b')")
    conn.commit()
    cur.execute("SELECT uid FROM t ORDER BY id")
    assert cur.fetchall() == (("a",), ("b",))
    conn.close()


@pytest.mark.parametrize("op", ["commit", "rollback"])
@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "resilient"])
@pytest.mark.parametrize("driver", MYSQL_DRIVERS, ids=[d.name for d in MYSQL_DRIVERS])
def test_commit_or_rollback_right_after_a_call(
    driver: Driver, dbkw: dict[str, Any], wrapped: bool, op: str
) -> None:
    """The CALL's last reply is still unread when the transaction ends. Plain mysqlclient
    refuses with "commands out of sync" (2014); before, the proxy took that for a lost
    connection: a COMMIT never sent became a write of unknown outcome, a ROLLBACK ended
    the session. Every driver's COMMIT or ROLLBACK must do what it says."""
    kwargs = {**dbkw, "autocommit": False}
    conn = _connect(driver.connect, wrapped, **kwargs)
    try:
        cur = conn.cursor()
        cur.execute(TWO_SETS)
        cur.execute("CREATE TEMPORARY TABLE tt (a INT)")
        session = driver.session_id(conn)
        cur.execute("INSERT INTO tt VALUES (1)")
        cur.callproc("two")
        if driver.name == "mysqlclient" and not wrapped:
            with pytest.raises(driver.error) as info:
                getattr(conn, op)()
            assert info.value.args[0] == 2014
            return
        getattr(conn, op)()
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM tt")
        assert cur.fetchone()[0] == (1 if op == "commit" else 0)
        assert driver.session_id(conn) == session
    finally:
        conn.close()


def test_a_failed_setting_of_several_is_not_made_again(server: Any, db: dict[str, Any]) -> None:
    """``query()`` of several settings returns after the first; a later one fails on
    the server. Before, all were journaled and every new session failed on the bad one
    (1193 for ever). Whether the others took is the caller's to read, so their loss is
    named once, and the next session has the first."""
    several = {"autocommit": True, "client_flag": pymysql.constants.CLIENT.MULTI_STATEMENTS}
    conn = resilient_dbapi.connect(pymysql.connect, **several, **db)
    try:
        conn.query("SET @@session.sql_mode = 'ANSI_QUOTES'; SET @@nonexistent_var = 1")
        cur = conn.cursor()
        with pytest.raises(pymysql.err.OperationalError) as info:
            cur.execute("SELECT 1")
        assert info.value.args[0] == 1193  # the driver's own error, as plain PyMySQL's
        kill(server, conn.thread_id())
        with pytest.raises(SessionLostError) as lost:
            cur.execute("SELECT 1")
        assert "not read back" in str(lost.value)
        cur.execute("SELECT @@session.sql_mode")
        assert cur.fetchall() == (("ANSI_QUOTES",),)
    finally:
        conn.close()


def test_rollback_after_a_call_cut_short(server: Any, db: dict[str, Any]) -> None:
    """The connection dies while ROLLBACK waits for the CALL's last replies: nothing is
    left to roll back, so rollback() succeeds, as it does when it dies under the
    ROLLBACK itself (before, the failed read was judged a lost transaction)."""
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    try:
        cur = conn.cursor()
        cur.execute(SLOW_TAIL)
        cur.execute("INSERT INTO t (uid) VALUES ('first')")
        cur.callproc("slow_tail")
        with killed_in_flight(server, conn.thread_id(), after=0.5):
            conn.rollback()
        assert rows(server, db, "SELECT uid FROM t") == []
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("autocommit", "op"), [(False, "commit"), (True, "commit"), (True, "rollback")]
)
def test_the_end_of_a_call_cut_short_is_the_calls(
    server: Any, db: dict[str, Any], autocommit: bool, op: str
) -> None:
    """The connection dies while COMMIT or ROLLBACK waits for the CALL's last replies:
    the CALL's last statements may or may not have run, and a procedure may commit
    inside (or autocommit is on, where a ROLLBACK undoes nothing): their outcome is
    unknown, the weaker claim (before: the driver's 2013, or a silent success)."""
    conn = resilient_dbapi.connect(pymysql.connect, autocommit=autocommit, **db)
    try:
        cur = conn.cursor()
        cur.execute(SLOW_TAIL)
        cur.callproc("slow_tail")
        with (
            killed_in_flight(server, conn.thread_id(), after=0.5),
            pytest.raises(OutcomeUnknownError) as info,
        ):
            getattr(conn, op)()
        assert isinstance(info.value, pymysql.err.OperationalError)
        assert rows(server, db, "SELECT uid FROM t") == []  # killed before its INSERT
    finally:
        conn.close()


FAILING_TAIL = (
    "CREATE PROCEDURE failing_tail() BEGIN SELECT 1; INSERT INTO t (uid) VALUES ('p'); "
    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'tail failed'; END"
)


@pytest.mark.parametrize(
    ("autocommit", "op", "raises", "left"),
    [
        (False, "rollback", False, []),
        (False, "commit", True, []),
        (True, "rollback", True, [("p",)]),
        (True, "commit", True, [("p",)]),
    ],
)
def test_the_end_after_a_call_that_failed_part_way(
    server: Any,
    db: dict[str, Any],
    autocommit: bool,
    op: str,
    raises: bool,
    left: list[tuple[str]],
) -> None:
    """The CALL's last statement fails (SIGNAL) after it wrote. COMMIT never commits
    it and tells the failure; ROLLBACK in a transaction undoes it all and succeeds;
    with autocommit on its write stays, so both tell the failure, as the driver does."""
    conn = resilient_dbapi.connect(pymysql.connect, autocommit=autocommit, **db)
    try:
        cur = conn.cursor()
        cur.execute(FAILING_TAIL)
        if not autocommit:
            cur.execute("INSERT INTO t (uid) VALUES ('a')")
        cur.callproc("failing_tail")
        if raises:
            with pytest.raises(pymysql.err.MySQLError) as info:
                getattr(conn, op)()
            assert info.value.args[0] == 1644  # the SIGNAL, the driver's own error
            conn.rollback()
        else:
            getattr(conn, op)()
        assert rows(server, db, "SELECT uid FROM t") == left
        cur = conn.cursor()
        cur.execute("SELECT 2")  # the connection goes on
        assert cur.fetchall() == ((2,),)
    finally:
        conn.close()


@pytest.mark.parametrize("call", ["callproc", "executemany"])
@pytest.mark.parametrize("on", ["same cursor", "another cursor"])
@pytest.mark.parametrize("wrapped", [False, True], ids=["mysqlclient", "resilient"])
def test_an_unbuffered_cursors_call_then_a_statement(
    db: dict[str, Any], wrapped: bool, on: str, call: str
) -> None:
    """mysqlclient's unbuffered cursor after a CALL, its first set unread: the sets are
    read through that cursor (its rows first). Before, the proxy asked the connection
    for the next set, mysqlclient answered "commands out of sync" (2014), and a healthy
    session ended as a write of unknown outcome. Plain mysqlclient reads through on the
    same cursor and refuses on another one."""
    import MySQLdb
    import MySQLdb.cursors

    (mysqlclient,) = [d for d in MYSQL_DRIVERS if d.name == "mysqlclient"]
    kwargs = {**mysqlclient.translate(db), "autocommit": True}
    conn = _connect(MySQLdb.connect, wrapped, **kwargs)
    try:
        cur = conn.cursor()
        cur.execute(TWO_SETS)
        cur.execute("SELECT CONNECTION_ID()")
        session = cur.fetchone()[0]
        unbuffered = conn.cursor(MySQLdb.cursors.SSCursor)
        if call == "callproc":
            unbuffered.callproc("two")
        else:
            unbuffered.executemany("CALL two()", [(), ()])
        then = unbuffered if on == "same cursor" else conn.cursor()
        if not wrapped and on == "another cursor":
            with pytest.raises(MySQLdb.ProgrammingError) as info:
                then.execute("SELECT 3")
            assert info.value.args[0] == 2014
            return
        then.execute("SELECT 3")
        assert list(then.fetchall()) == [(3,)]
        then.execute("SELECT CONNECTION_ID()")
        assert then.fetchone()[0] == session
    finally:
        conn.close()


# -- asyncio (aiomysql's reader holds the unread sets: news to a naive check) ---------


@pytest.mark.parametrize("then", ["SELECT 3", "INSERT INTO tt VALUES (3)"])
def test_aiomysql_unread_sets_are_not_a_closed_connection(db: dict[str, Any], then: str) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db, autocommit=True))
        cur = await conn.cursor()
        await cur.execute(TWO_SETS)
        await cur.execute("CREATE TEMPORARY TABLE tt (a INT)")
        thread = conn.thread_id()
        await cur.callproc("two")
        assert await cur.fetchall() == ((1,),)
        await asyncio.sleep(0.1)  # the event loop reads the rest into the reader
        await cur.execute(then)
        await cur.execute("SELECT COUNT(*) FROM tt")
        assert (await cur.fetchall())[0][0] == (1 if "INSERT" in then else 0)
        assert conn.thread_id() == thread
        conn.close()

    asyncio.run(story())


def test_aiomysql_a_call_cut_short_is_reported(server: Any, db: dict[str, Any]) -> None:
    async def story() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(db, autocommit=True))
        cur = await conn.cursor()
        await cur.execute(SLOW_TAIL)
        await cur.callproc("slow_tail")
        assert await cur.fetchall() == ((1,),)
        kill(server, conn.thread_id())
        await asyncio.sleep(0.1)
        with pytest.raises(pymysql.err.OperationalError) as info:
            await cur.execute("SELECT 2")
        assert isinstance(info.value, OutcomeUnknownError)
        with pytest.raises(SessionLostError):
            await cur.execute("SELECT 2")
        await cur.execute("SELECT 2")
        assert await cur.fetchall() == ((2,),)
        conn.close()

    asyncio.run(story())
    assert rows(server, db, "SELECT COUNT(*) FROM t")[0][0] == 0


def test_session_lost_is_still_reported_behind_unread_sets(server: Any, db: dict[str, Any]) -> None:
    """Reading the sets first does not hide a real end: a killed session with a
    temporary table is still SessionLostError. The kill waits until the server sent the
    whole CALL (its session idle): one that cut the CALL's replies short would make the
    CALL's outcome unknown, the loss rightly reported as that (it happened under load)."""
    conn = resilient_dbapi.connect(pymysql.connect, autocommit=True, **db)
    cur = conn.cursor()
    _setup(cur)
    cur.callproc("two")
    _wait_idle(server, conn.thread_id())
    kill(server, conn.thread_id())
    with pytest.raises(SessionLostError):
        cur.execute("INSERT INTO tt VALUES (1)")
    conn.close()
