"""Verified transaction replay (``ReplayTransaction``): a transaction lost before COMMIT
goes on on a new connection when the server gives the same answers; otherwise it is lost
as without replay. The server judges every outcome (what is committed)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import aiomysql
import pymysql
import pymysql.cursors
import pytest

import resilient_dbapi
from resilient_dbapi import ReplayTransaction, aio, events
from resilient_dbapi.policies import default_policies

from .conftest import kill, killed_in_flight, rows
from .drivers import DRIVERS, Driver, postgres_database
from .test_aio import aio_kwargs, run

pytestmark = pytest.mark.server

REPLAY = [*default_policies(), ReplayTransaction()]


@pytest.fixture
def acc(server: Any, db: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``db`` with a table ``acc`` of two accounts holding 100 each."""
    admin = pymysql.connect(autocommit=True, **db)
    with admin.cursor() as cur:
        cur.execute("CREATE TABLE acc (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
        cur.execute("INSERT INTO acc VALUES (1, 100), (2, 100)")
    admin.close()
    yield db


def _balances(server: Any, db: dict[str, Any]) -> list[tuple[Any, ...]]:
    return rows(server, db, "SELECT id, n FROM acc ORDER BY id")


def _transfer_until_kill(cur: Any, server: Any, conn: Any) -> None:
    """A transfer's first half, then the server kills the idle connection."""
    cur.execute("SELECT n FROM acc WHERE id = %s", (1,))
    assert cur.fetchone()[0] == 100
    cur.execute("UPDATE acc SET n = n - %s WHERE id = %s", (10, 1))
    kill(server, conn.thread_id())


def test_a_transaction_killed_before_commit_goes_on_after_a_verified_replay(
    server: Any, acc: dict[str, Any]
) -> None:
    """Without replay the kill loses the transfer (TransactionLostError); with it, the
    second half runs on a new connection after the first half was run again and gave
    the same answers, and the committed result is the one without the kill."""
    plain = resilient_dbapi.connect(pymysql.connect, **acc)
    cur = plain.cursor()
    plain.begin()
    _transfer_until_kill(cur, server, plain)
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("UPDATE acc SET n = n + %s WHERE id = %s", (10, 2))
    plain.rollback()
    plain.close()
    assert _balances(server, acc) == [(1, 100), (2, 100)]

    seen: list[events.Event] = []
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, listeners=[seen.append], **acc)
    cur = conn.cursor()
    conn.begin()
    _transfer_until_kill(cur, server, conn)
    cur.execute("UPDATE acc SET n = n + %s WHERE id = %s", (10, 2))
    assert cur.rowcount == 1
    conn.commit()
    assert _balances(server, acc) == [(1, 90), (2, 110)]
    assert conn.stats.transactions_replayed == 1
    assert conn.stats.transactions_lost == 0
    (replayed,) = [e for e in seen if isinstance(e, events.TransactionReplayed)]
    assert replayed.statements == 3  # begin(), the SELECT, the first UPDATE
    # The connection goes on: another transaction, replayable again.
    conn.begin()
    cur.execute("UPDATE acc SET n = n - 1 WHERE id = 1")
    conn.commit()
    assert _balances(server, acc) == [(1, 89), (2, 110)]
    conn.close()


def test_a_row_the_transaction_read_changed_meanwhile_is_a_divergence(
    server: Any, acc: dict[str, Any]
) -> None:
    """A concurrent writer changes the balance the transaction read before the kill: the
    replay reads another value, so it stops there, nothing is committed, and the error
    says where it diverged."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    conn.begin()
    cur.execute("SELECT n FROM acc WHERE id = %s", (1,))
    assert cur.fetchone() == (100,)
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 2")
    kill(server, conn.thread_id())
    other = pymysql.connect(autocommit=True, **acc)
    other.cursor().execute("UPDATE acc SET n = 50 WHERE id = 1")
    other.close()
    with pytest.raises(resilient_dbapi.TransactionLostError, match="diverged at statement 2 of 3"):
        cur.execute("UPDATE acc SET n = n + 10 WHERE id = 1")
    with pytest.raises(resilient_dbapi.TransactionLostError):
        conn.commit()  # lost until rollback(), as without replay
    conn.rollback()
    assert _balances(server, acc) == [(1, 50), (2, 100)]
    assert conn.stats.transactions_lost == 1
    assert conn.stats.transactions_replayed == 0
    cur.execute("SELECT n FROM acc WHERE id = 2")  # the connection goes on
    assert cur.fetchall() == ((100,),)
    conn.close()


def test_a_statement_killed_in_flight_is_run_after_the_replay(
    server: Any, acc: dict[str, Any]
) -> None:
    """The write in flight at the kill was rolled back with the transaction (a text the
    server was seen to write only InnoDB with): the replay runs what came before, then it
    is sent once more; committed once."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    slow = "UPDATE acc SET n = n + IF(SLEEP(%s), 0, 10) WHERE id = 2"
    cur.execute(slow, (0,))  # learned: it writes only a table that rolls back
    conn.commit()
    conn.begin()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    with killed_in_flight(server, conn.thread_id()):
        cur.execute(slow, (1,))
    conn.commit()
    assert _balances(server, acc) == [(1, 90), (2, 120)]
    assert conn.stats.transactions_replayed == 1
    conn.close()


@pytest.mark.parametrize(
    ("case", "statement", "args", "error"),
    [
        (
            "a write of NOW()",
            "UPDATE acc SET n = UNIX_TIMESTAMP(NOW()) % 7 WHERE id = 1",
            None,
            resilient_dbapi.TransactionLostError,
        ),
        (
            "a setting inside",
            "SET SESSION sql_mode = 'ANSI_QUOTES'",
            None,
            resilient_dbapi.TransactionLostError,
        ),
        (
            "a temporary table",
            "CREATE TEMPORARY TABLE tmp (x INT)",
            None,
            resilient_dbapi.TransactionLostError,
        ),
        (
            "a named lock",
            "SELECT GET_LOCK('replay', 0)",
            None,
            resilient_dbapi.OutcomeUnknownError,  # what the rules say of it, unchanged
        ),
        (
            "an unbuffered result",
            "SELECT n FROM acc",
            pymysql.cursors.SSCursor,
            resilient_dbapi.TransactionLostError,
        ),
    ],
)
def test_what_a_replay_could_not_reproduce_or_check_is_never_replayed(
    server: Any, acc: dict[str, Any], case: str, statement: str, args: Any, error: type
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    conn.begin()
    cur = conn.cursor()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    other = conn.cursor(args) if args is not None else cur
    other.execute(statement)
    other.fetchall()
    kill(server, conn.thread_id())
    with pytest.raises(error):
        cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    with contextlib.suppress(resilient_dbapi.ResilientError):
        conn.rollback()
    assert _balances(server, acc) == [(1, 100), (2, 100)]
    assert conn.stats.transactions_replayed == 0
    conn.close()


def test_a_one_shot_set_transaction_keeps_the_next_transaction_from_replay(
    server: Any, acc: dict[str, Any]
) -> None:
    """``SET TRANSACTION ISOLATION LEVEL ...`` sets the next transaction only: not in
    the journal, so a new session would run the replay at another level."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    conn.begin()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    conn.rollback()
    # The transaction after it replays again.
    conn.begin()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    kill(server, conn.thread_id())
    cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    conn.commit()
    assert _balances(server, acc) == [(1, 90), (2, 110)]
    conn.close()


@pytest.mark.parametrize(
    "limits",
    [
        {"max_statements": 2},
        {"max_bytes": 60},
    ],
    ids=["statements", "bytes"],
)
def test_past_its_limits_a_transaction_is_lost_as_without_replay(
    server: Any, acc: dict[str, Any], limits: dict[str, int]
) -> None:
    policies = [*default_policies(), ReplayTransaction(**limits)]
    conn = resilient_dbapi.connect(pymysql.connect, policies=policies, **acc)
    cur = conn.cursor()
    conn.begin()
    cur.execute("UPDATE acc SET n = n - 1 WHERE id = 1")
    cur.execute("UPDATE acc SET n = n - 1 WHERE id = 1")
    cur.execute("UPDATE acc SET n = n - 1 WHERE id = 1")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("UPDATE acc SET n = n + 3 WHERE id = 2")
    conn.rollback()
    assert _balances(server, acc) == [(1, 100), (2, 100)]
    conn.close()


def test_an_autocommit_write_keeps_its_unknown_outcome(server: Any, acc: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, autocommit=True, **acc)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    with (
        killed_in_flight(server, conn.thread_id()),
        pytest.raises(resilient_dbapi.OutcomeUnknownError),
    ):
        cur.execute("UPDATE acc SET n = n + IF(SLEEP(1), 0, 1) WHERE id = 1")
    conn.close()


def test_a_commit_found_dead_before_it_was_sent_commits_after_a_replay(
    server: Any, acc: dict[str, Any]
) -> None:
    """With replay on, commit() checks the socket first (microseconds): killed while
    idle, the COMMIT was provably never sent, so the transaction is replayed and committed
    on the new connection. Without replay the COMMIT goes out on the dead socket and its
    outcome is unknown."""
    plain = resilient_dbapi.connect(pymysql.connect, **acc)
    plain.begin()
    plain.cursor().execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    kill(server, plain.thread_id())
    with pytest.raises(resilient_dbapi.OutcomeUnknownError):
        plain.commit()
    plain.rollback()
    plain.close()

    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    conn.begin()
    cur = conn.cursor()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    kill(server, conn.thread_id())
    conn.commit()
    assert conn.stats.transactions_replayed == 1
    assert _balances(server, acc) == [(1, 90), (2, 110)]
    conn.close()


def test_a_statement_asking_the_lost_sessions_history_is_never_replayed(
    server: Any, acc: dict[str, Any]
) -> None:
    """``LAST_INSERT_ID()`` would read the new session's: the child row would point at
    nothing. Lost instead, as without replay."""
    setup = pymysql.connect(autocommit=True, **acc)
    setup.cursor().execute(
        "CREATE TABLE parent (id INT AUTO_INCREMENT PRIMARY KEY, x INT) ENGINE=InnoDB"
    )
    setup.cursor().execute("CREATE TABLE child (pid INT) ENGINE=InnoDB")
    setup.close()
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, autocommit=True, **acc)
    cur = conn.cursor()
    cur.execute("INSERT INTO parent (x) VALUES (1)")
    conn.begin()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("INSERT INTO child (pid) VALUES (LAST_INSERT_ID())")
    conn.rollback()
    assert rows(server, acc, "SELECT pid FROM child") == []
    assert _balances(server, acc) == [(1, 100), (2, 100)]
    conn.close()


def test_no_new_connection_for_the_replay_is_a_lost_transaction(
    proxy: Any, server: Any, acc: dict[str, Any]
) -> None:
    from resilient_dbapi import PingOnCheckout, RetryOnError

    policies = [PingOnCheckout(), RetryOnError(attempts=1), ReplayTransaction()]
    through = {**acc, "host": "127.0.0.1", "port": proxy.port}
    conn = resilient_dbapi.connect(pymysql.connect, policies=policies, **through)
    conn.begin()
    cur = conn.cursor()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    proxy.refuse_new()
    proxy.close_all()
    with pytest.raises(resilient_dbapi.TransactionLostError, match="no new connection"):
        cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    with pytest.raises(resilient_dbapi.TransactionLostError):
        conn.commit()
    conn.rollback()
    assert _balances(server, acc) == [(1, 100), (2, 100)]
    conn.close()


def test_executemany_and_savepoints_replay_in_order(server: Any, acc: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    conn.begin()
    cur.executemany("UPDATE acc SET n = n - %s WHERE id = %s", [(1, 1), (2, 1)])
    cur.execute("SAVEPOINT before_bonus")
    cur.execute("UPDATE acc SET n = n + 1000 WHERE id = 2")
    cur.execute("ROLLBACK TO SAVEPOINT before_bonus")
    kill(server, conn.thread_id())
    cur.execute("UPDATE acc SET n = n + 3 WHERE id = 2")
    conn.commit()
    assert conn.stats.transactions_replayed == 1
    assert _balances(server, acc) == [(1, 97), (2, 103)]
    conn.close()


# What a transaction's statements showed, as the log keeps it: rows, none, a row count,
# a new id, a warning, and more rows than are kept whole (digested at once).
_SHOWN = (
    "SELECT id, n FROM acc ORDER BY id",
    "SELECT n FROM acc WHERE id = 3",
    "UPDATE acc SET n = n + 1",
    "INSERT INTO seq (x) VALUES (1)",
    "SELECT CAST('x' AS SIGNED)",
    "SELECT seq FROM seq_1_to_100",
)


def _seq_table(acc: dict[str, Any]) -> None:
    admin = pymysql.connect(autocommit=True, **acc)
    admin.cursor().execute("CREATE TABLE seq (id INT AUTO_INCREMENT PRIMARY KEY, x INT)")
    admin.close()


def _check_kept(adapter: Any, cur: Any, sql: str) -> None:
    kept = adapter.result_kept(cur)
    assert adapter.kept_digest(kept) == adapter.result_digest(cur), sql
    if "seq_1_to_100" in sql:
        assert isinstance(kept, tuple)  # digested at once: 100 rows are not kept whole
    else:
        assert kept is cur._result, sql  # by reference: nothing computed per statement


@pytest.mark.parametrize("cursor_class", [pymysql.cursors.Cursor, pymysql.cursors.DictCursor])
def test_the_log_keeps_a_result_by_reference_and_digests_it_as_its_cursor_shows_it(
    acc: dict[str, Any], cursor_class: Any
) -> None:
    """PyMySQL: a replay compares the digest of what the log kept (the driver's result
    object, never changed once read) with the replayed cursor's: they must be the digest
    the caller's cursor shows (rows as tuples whatever its class; a dict cursor's rows
    with two columns of one name would show fewer values: the result's are compared)."""
    _seq_table(acc)
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    raw = pymysql.connect(cursorclass=cursor_class, **acc)
    cur = raw.cursor()
    for sql in _SHOWN:
        cur.execute(sql)
        _check_kept(conn._adapter, cur, sql)
    raw.rollback()
    raw.close()
    conn.close()


def test_the_journal_keeps_the_proxy_cursors_results_unchanged_by_later_statements(
    acc: dict[str, Any],
) -> None:
    """Through the proxy: each entry of the open transaction's log holds the result its
    statement left, and what it digests to does not change as later statements run, on
    the same cursor or another, with a dict cursor; a large result is kept as a digest
    of the result's own rows (dict rows would merge two columns named alike)."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    other = conn.cursor(pymysql.cursors.DictCursor)
    conn.begin()
    cur.execute("SELECT id, n FROM acc WHERE id = %s", (1,))
    first = cur._raw._result
    digest = conn._adapter.kept_digest(first)
    cur.execute("UPDATE acc SET n = n + %s WHERE id = %s", (1, 2))
    other.execute("SELECT a.n, b.n FROM acc a JOIN acc b ON a.id = b.id WHERE a.id = %s", (1,))
    other.execute("SELECT a.id, b.id FROM acc a, acc b, seq_1_to_20 s WHERE s.seq > %s", (0,))
    assert len(other.fetchall()) == 80  # more than are kept whole
    entries = conn._engine.txn_log
    assert entries[1].digest is first and entries[2].digest is cur._raw._result
    assert conn._adapter.kept_digest(entries[1].digest) == digest
    assert digest == (1, None, digest[2], 0, ((1, 100),))
    assert conn._adapter.kept_digest(entries[3].digest)[4] == ((100, 100),)  # both columns
    assert isinstance(entries[4].digest, tuple)  # digested at once
    conn.rollback()
    conn.close()


def test_aiomysql_keeps_a_result_by_reference_the_same_way(acc: dict[str, Any]) -> None:
    _seq_table(acc)

    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, policies=REPLAY, **aio_kwargs(acc))
        raw = await aiomysql.connect(**aio_kwargs(acc))
        for cursor_class in (aiomysql.Cursor, aiomysql.DictCursor):
            cur = await raw.cursor(cursor_class)
            for sql in _SHOWN:
                with warnings.catch_warnings():
                    # aiomysql turns the server's warning into a Python one, which the
                    # suite's filterwarnings=error would raise: its count is what counts.
                    warnings.simplefilter("ignore")
                    await cur.execute(sql)
                _check_kept(conn._adapter, cur, sql)
        await raw.rollback()
        raw.close()
        conn.close()

    run(main())


def test_a_new_id_the_replay_cannot_give_again_is_a_divergence(
    server: Any, acc: dict[str, Any]
) -> None:
    """The caller saw the id its INSERT made; the replay's INSERT makes another (the
    server does not hand out a rolled-back id again): the replay stops there."""
    _seq_table(acc)
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    conn.begin()
    cur.execute("INSERT INTO seq (x) VALUES (%s)", (1,))
    assert cur.lastrowid == 1
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError, match="diverged at statement 2 of 2"):
        cur.execute("INSERT INTO seq (x) VALUES (%s)", (2,))
    conn.rollback()
    assert rows(server, acc, "SELECT id, x FROM seq") == []
    conn.close()


def test_aiomysql_replays_the_same_way(server: Any, acc: dict[str, Any]) -> None:
    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, policies=REPLAY, **aio_kwargs(acc))
        async with conn.cursor() as cur:
            await conn.begin()
            await cur.execute("SELECT n FROM acc WHERE id = %s", (1,))
            await cur.execute("UPDATE acc SET n = n - %s WHERE id = %s", (10, 1))
            kill(server, conn.thread_id())
            await cur.execute("UPDATE acc SET n = n + %s WHERE id = %s", (10, 2))
        await conn.commit()
        assert conn.stats.transactions_replayed == 1
        conn.close()

    run(main())
    assert _balances(server, acc) == [(1, 90), (2, 110)]


def test_bad_policy_values_are_refused_naming_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="max_statements must be an int from 1 to 100000"):
        ReplayTransaction(max_statements=0)
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        ReplayTransaction(max_bytes=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_seconds must be > 0"):
        ReplayTransaction(max_seconds=0)


def test_a_sqlalchemy_session_transaction_goes_on_after_a_replay(
    server: Any, acc: dict[str, Any]
) -> None:
    """Through SQLAlchemy (its pool over ``resilient_dbapi.creator``), whose transactions
    are implicit (autocommit off, no BEGIN): the replay opens the transaction the same
    way on the new connection."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        "mysql+pymysql://",
        creator=resilient_dbapi.creator(pymysql.connect, policies=REPLAY, **acc),
    )
    with engine.connect() as connection:
        n = connection.execute(sqlalchemy.text("SELECT n FROM acc WHERE id = 1")).scalar()
        connection.execute(sqlalchemy.text("UPDATE acc SET n = :n WHERE id = 1"), {"n": n - 10})
        proxy = connection.connection.dbapi_connection
        kill(server, proxy.thread_id())
        connection.execute(sqlalchemy.text("UPDATE acc SET n = n + 10 WHERE id = 2"))
        connection.commit()
        assert proxy.stats.transactions_replayed == 1
    engine.dispose()
    assert _balances(server, acc) == [(1, 90), (2, 110)]


def test_the_replay_sends_the_parameters_as_they_were_not_as_the_caller_changed_them(
    server: Any, acc: dict[str, Any]
) -> None:
    """A list passed as a parameter and changed by the caller after the statement ran:
    the replay sends what was sent the first time (the row count alone could not tell)."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    conn.begin()
    ids = [1]
    cur.execute("UPDATE acc SET n = n - 10 WHERE id IN %s", (ids,))
    ids[0] = 2  # the caller reuses its list
    kill(server, conn.thread_id())
    cur.execute("UPDATE acc SET n = n + 1 WHERE id = 2")
    conn.commit()
    assert conn.stats.transactions_replayed == 1
    assert _balances(server, acc) == [(1, 90), (2, 101)]
    conn.close()


# -- every driver (tests/drivers.py), each against its own server ---------------------


def _accounts(driver: Driver, kwargs: dict[str, Any]) -> None:
    conn = driver.connect(**kwargs)
    cur = conn.cursor()
    cur.execute("CREATE TABLE acc (id INT PRIMARY KEY, n INT NOT NULL)")
    cur.execute("INSERT INTO acc VALUES (1, 100), (2, 100)")
    conn.commit()
    conn.close()


def _driver_balances(driver: Driver, kwargs: dict[str, Any]) -> list[tuple[Any, ...]]:
    conn = driver.connect(**kwargs)
    try:
        cur = conn.cursor()
        cur.execute("SELECT id, n FROM acc ORDER BY id")
        return [tuple(row) for row in cur.fetchall()]
    finally:
        conn.rollback()
        conn.close()


def _buffered(driver: Driver, conn: Any) -> Any:
    """A cursor whose rows the proxy can read whole: mysql-connector's default cursor
    leaves a result's rows on the socket until fetched (never replayed)."""
    return conn.cursor(buffered=True) if driver.name == "mysql-connector" else conn.cursor()


def _kill_seen_before_sending(driver: Driver) -> bool:
    """Whether the socket check before a write shows a killed connection dead. Not
    mysqlclient's: its C library may speak TLS unseen, so a readable socket is only
    "unsure", and the write is sent (its outcome then unknown, replay or not)."""
    return driver.name != "mysqlclient"


def _session(driver: Driver, conn: Any) -> int:
    """The server session of ``conn``, asked outside any transaction."""
    session = driver.session_id(conn)
    conn.rollback()
    return session


def test_every_driver_replays_a_transaction_killed_after_a_locking_read(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    """Autocommit off, the drivers' default (no begin(): mysql-connector and psycopg
    open transactions with the first statement): a read and a locking read, the kill,
    then the writes. Without replay the transaction is lost; with it, it goes on and
    commits what a run without the kill commits."""
    _accounts(driver, dbkw)
    for policies in (None, REPLAY):
        conn = resilient_dbapi.connect(driver.connect, policies=policies, **dbkw)
        session = _session(driver, conn)
        cur = _buffered(driver, conn)
        cur.execute("SELECT n FROM acc WHERE id = 2")
        assert cur.fetchone()[0] == 100
        cur.execute("SELECT n FROM acc WHERE id = 1 FOR UPDATE")
        (n,) = cur.fetchone()
        driver.kill(srv, session)
        if not _kill_seen_before_sending(driver):
            with pytest.raises(resilient_dbapi.OutcomeUnknownError):
                cur.execute("UPDATE acc SET n = %s WHERE id = 1", (n - 10,))
            conn.rollback()
            assert conn.stats.transactions_replayed == 0
        elif policies is None:
            with pytest.raises(resilient_dbapi.TransactionLostError):
                cur.execute("UPDATE acc SET n = %s WHERE id = 1", (n - 10,))
            conn.rollback()
        else:
            cur.execute("UPDATE acc SET n = %s WHERE id = 1", (n - 10,))
            cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
            assert cur.rowcount == 1
            conn.commit()
            assert conn.stats.transactions_replayed == 1
            assert _driver_balances(driver, dbkw) == [(1, 90), (2, 110)]
        conn.close()


def test_every_driver_replays_a_write_only_where_the_server_proves_the_rollback(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    """A write, then the kill. PyMySQL (MariaDB's session tracking) and psycopg (every
    PostgreSQL table rolls back) prove the lost transaction rolled back: it is replayed.
    mysqlclient and mysql-connector show no such proof (the write may have gone to a
    table that keeps it): the outcome stays unknown, replay or not."""
    _accounts(driver, dbkw)
    conn = resilient_dbapi.connect(driver.connect, policies=REPLAY, **dbkw)
    session = _session(driver, conn)
    cur = conn.cursor()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    driver.kill(srv, session)
    if driver.proves_rollback:
        cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
        conn.commit()
        assert conn.stats.transactions_replayed == 1
        assert _driver_balances(driver, dbkw) == [(1, 90), (2, 110)]
    else:
        with pytest.raises(resilient_dbapi.OutcomeUnknownError):
            cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
        conn.rollback()
        assert conn.stats.transactions_replayed == 0
        assert _driver_balances(driver, dbkw) == [(1, 100), (2, 100)]
    conn.close()


def test_every_driver_sees_a_read_before_the_first_write_diverge(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    """Autocommit off: the caller read account 2 before the transaction's first write
    or lock (psycopg reports no transaction until then). Another session changes it;
    the replay reads it again, sees another value, and the transaction is lost with
    nothing of it committed."""
    _accounts(driver, dbkw)
    conn = resilient_dbapi.connect(driver.connect, policies=REPLAY, **dbkw)
    session = _session(driver, conn)
    cur = _buffered(driver, conn)
    cur.execute("SELECT n FROM acc WHERE id = 2")
    assert cur.fetchone()[0] == 100
    cur.execute("SELECT n FROM acc WHERE id = 1 FOR UPDATE")
    cur.fetchone()
    driver.kill(srv, session)
    other = driver.connect(**dbkw)
    other_cur = other.cursor()
    other_cur.execute("UPDATE acc SET n = 50 WHERE id = 2")
    other.commit()
    other.close()
    if not _kill_seen_before_sending(driver):
        with pytest.raises(resilient_dbapi.OutcomeUnknownError):
            cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    else:
        with pytest.raises(resilient_dbapi.TransactionLostError, match="statement 1 of 2"):
            cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    conn.rollback()
    assert conn.stats.transactions_replayed == 0
    assert _driver_balances(driver, dbkw) == [(1, 100), (2, 50)]
    conn.close()


def test_a_write_of_now_marked_replayable_is_replayed(server: Any, acc: dict[str, Any]) -> None:
    """The caller's word per statement (``replayable()``, the REPLAYABLE comment): a
    write calling NOW() is replayed, writing the new run's time. Unmarked it is not
    (the case above); a stored function stays unreplayable even when marked."""
    admin = pymysql.connect(autocommit=True, **acc)
    with admin.cursor() as c:
        c.execute("ALTER TABLE acc ADD COLUMN seen DATETIME(6) NULL")
        c.execute("CREATE FUNCTION ten() RETURNS INT DETERMINISTIC RETURN 10")
    admin.close()
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    conn.begin()
    cur.execute(resilient_dbapi.replayable("UPDATE acc SET seen = NOW(6) WHERE id = 1"))
    cur.execute("SELECT seen FROM acc WHERE id = 1")
    (first,) = cur.fetchone()
    kill(server, conn.thread_id())
    # The caller read the first run's time: the replay's differs, seen at the SELECT.
    with pytest.raises(resilient_dbapi.TransactionLostError, match="statement 3 of 3"):
        cur.execute(f"UPDATE acc SET n = n + 10 WHERE id = 2 {resilient_dbapi.REPLAYABLE}")
    conn.rollback()
    assert conn.stats.transactions_replayed == 0
    assert _balances(server, acc) == [(1, 100), (2, 100)]

    conn.begin()
    cur.execute(resilient_dbapi.replayable("UPDATE acc SET seen = NOW(6) WHERE id = 1"))
    kill(server, conn.thread_id())
    cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    conn.commit()
    assert conn.stats.transactions_replayed == 1
    ((seen,),) = rows(server, acc, "SELECT seen FROM acc WHERE id = 1")
    assert seen > first  # the replay's own time
    assert _balances(server, acc) == [(1, 100), (2, 110)]

    conn.begin()
    cur.execute(resilient_dbapi.replayable("UPDATE acc SET n = n - ten() WHERE id = 1"))
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.ResilientError):
        cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    with contextlib.suppress(resilient_dbapi.ResilientError):
        conn.rollback()
    assert _balances(server, acc) == [(1, 100), (2, 110)]
    assert conn.stats.transactions_replayed == 1
    conn.close()
    with pytest.raises(TypeError, match="a str"):
        resilient_dbapi.replayable(b"UPDATE acc SET n = 0")  # type: ignore[arg-type]


# -- what runs past the log, and transactions ended past the proxy --------------------

_PSYCOPG = next(d for d in DRIVERS if d.name == "psycopg")


@pytest.fixture
def pg_acc(pg_server: Any) -> Iterator[dict[str, Any]]:
    """A fresh PostgreSQL database with the two accounts and a table of names."""
    databases = postgres_database(pg_server)
    kwargs = next(databases)
    _accounts(_PSYCOPG, kwargs)
    conn = _PSYCOPG.connect(**kwargs)
    conn.execute("CREATE TABLE names (name TEXT NOT NULL)")
    conn.commit()
    conn.close()
    yield kwargs
    for _ in databases:
        pass


def _names(kwargs: dict[str, Any]) -> list[str]:
    conn = _PSYCOPG.connect(**kwargs)
    try:
        return [row[0] for row in conn.execute("SELECT name FROM names ORDER BY name")]
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["copy", "stream"])
def test_a_psycopg_write_past_the_log_keeps_the_transaction_from_replay(
    pg_server: Any, pg_acc: dict[str, Any], how: str
) -> None:
    """A COPY, or an INSERT read through ``cursor.stream()``, is not in the log: a
    replay would run the transaction without it and commit the rest."""
    import psycopg

    conn = resilient_dbapi.connect(psycopg.connect, policies=REPLAY, **pg_acc)
    session = _session(_PSYCOPG, conn)
    cur = conn.cursor()
    cur.execute("INSERT INTO names VALUES ('a')")
    if how == "copy":
        with cur.copy("COPY names (name) FROM STDIN") as copy:
            copy.write_row(("b",))
    else:
        assert list(cur.stream("INSERT INTO names VALUES ('b') RETURNING name")) == [("b",)]
    _PSYCOPG.kill(pg_server, session)
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("INSERT INTO names VALUES ('c')")
    conn.rollback()
    assert conn.stats.transactions_replayed == 0
    assert _names(pg_acc) == []
    conn.close()


def test_a_transaction_committed_by_psycopgs_own_block_is_never_replayed(
    pg_server: Any, pg_acc: dict[str, Any]
) -> None:
    """``conn.transaction()`` with autocommit off commits past the proxy: the next
    transaction's replay runs its own statements only ('a' is committed once)."""
    import psycopg

    conn = resilient_dbapi.connect(psycopg.connect, policies=REPLAY, **pg_acc)
    session = _session(_PSYCOPG, conn)
    cur = conn.cursor()
    with conn.transaction():
        cur.execute("INSERT INTO names VALUES ('a')")
    cur.execute("INSERT INTO names VALUES ('b')")
    _PSYCOPG.kill(pg_server, session)
    cur.execute("INSERT INTO names VALUES ('c')")
    conn.commit()
    assert conn.stats.transactions_replayed == 1
    assert _names(pg_acc) == ["a", "b", "c"]
    conn.close()


def test_a_driver_query_keeps_the_transaction_from_replay(server: Any, acc: dict[str, Any]) -> None:
    """PyMySQL's ``conn.query()`` sends past the cursor: its write is not in the log."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    conn.begin()
    cur = conn.cursor()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    conn.query("UPDATE acc SET n = n + 10 WHERE id = 2")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("UPDATE acc SET n = n + 1 WHERE id = 1")
    conn.rollback()
    assert _balances(server, acc) == [(1, 100), (2, 100)]
    conn.close()


def test_a_commit_sent_as_sql_ends_the_log_under_autocommit_off(
    server: Any, acc: dict[str, Any]
) -> None:
    """``COMMIT`` sent as a statement with autocommit off: the next transaction's log
    starts after it (it is not replayed as its first statement)."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    cur.execute("COMMIT")
    cur.execute("UPDATE acc SET n = n - 1 WHERE id = 1")
    cur.execute("COMMIT")
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    kill(server, conn.thread_id())
    cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    conn.commit()
    assert conn.stats.transactions_replayed == 1
    assert _balances(server, acc) == [(1, 89), (2, 110)]
    conn.close()


def test_a_one_shot_set_transaction_outlives_a_read_that_opened_nothing(
    server: Any, acc: dict[str, Any]
) -> None:
    """``SET TRANSACTION ...``, ``SELECT 1`` (which opens no transaction), then
    ``autocommit(False)`` and the transaction the setting was for: not replayed."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, autocommit=True, **acc)
    cur = conn.cursor()
    conn.autocommit(False)
    cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    cur.execute("SELECT 1")
    conn.autocommit(False)
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    conn.rollback()
    assert _balances(server, acc) == [(1, 100), (2, 100)]
    conn.close()


def test_a_one_shot_set_transaction_is_spent_on_the_transaction_it_kept_from_replay(
    server: Any, acc: dict[str, Any]
) -> None:
    """``SET TRANSACTION ...``, then a read and a write under autocommit off: the
    setting was for that transaction (not replayed), and only for it: the next one is."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    conn.autocommit(False)
    cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    cur.execute("SELECT n FROM acc WHERE id = 1")
    cur.execute("UPDATE acc SET n = n - 1 WHERE id = 1")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("UPDATE acc SET n = n + 1 WHERE id = 2")
    conn.rollback()
    cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    cur.execute("SELECT n FROM acc WHERE id = 1")
    cur.execute("UPDATE acc SET n = n - 1 WHERE id = 1")
    conn.commit()
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    kill(server, conn.thread_id())
    cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    conn.commit()
    assert conn.stats.transactions_replayed == 1
    assert _balances(server, acc) == [(1, 89), (2, 110)]
    conn.close()


def test_a_one_shot_setting_outlives_statements_that_open_no_transaction(
    server: Any, acc: dict[str, Any]
) -> None:
    """``SET TRANSACTION READ ONLY``, then ``DO 1`` (taken for a write) and a setting
    (the server: nothing open) before the transaction it shapes: a replay on a new
    session would commit a write the read-only transaction could never have made."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    conn.autocommit(False)
    cur.execute("SET TRANSACTION READ ONLY")
    cur.execute("SELECT 1")
    cur.execute("DO 1")
    cur.execute("SET NAMES utf8mb4")
    cur.execute("SELECT n FROM acc WHERE id = 1")
    kill(server, conn.thread_id())
    # The server reports no transaction after the read: the setting is what was lost.
    with pytest.raises(resilient_dbapi.SessionLostError, match="SET TRANSACTION"):
        cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    conn.rollback()
    assert conn.stats.transactions_replayed == 0
    assert _balances(server, acc) == [(1, 100), (2, 100)]
    conn.close()


def test_a_one_shot_setting_holds_a_transaction_begun_as_text(
    server: Any, acc: dict[str, Any]
) -> None:
    """``START TRANSACTION`` after ``SET TRANSACTION READ ONLY`` starts the transaction
    the setting shapes: a replay would commit a write the server refuses (1792)."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, autocommit=True, **acc)
    cur = conn.cursor()
    cur.execute("SET TRANSACTION READ ONLY")
    cur.execute("START TRANSACTION")
    cur.execute("SELECT n FROM acc WHERE id = 1")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    conn.rollback()
    assert conn.stats.transactions_replayed == 0
    assert _balances(server, acc) == [(1, 100), (2, 100)]
    conn.close()


def test_a_one_shot_setting_after_one_that_autocommit_ended_holds_its_transaction(
    server: Any, acc: dict[str, Any]
) -> None:
    """A reviewer's scenario: the first setting's transaction ended by autocommit(True),
    a second setting (READ ONLY), START TRANSACTION, a read, the kill: never replayed."""
    conn = resilient_dbapi.connect(pymysql.connect, policies=REPLAY, **acc)
    cur = conn.cursor()
    conn.autocommit(False)
    cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    cur.execute("UPDATE acc SET n = n + 1 WHERE id = 2")
    conn.autocommit(True)
    cur.execute("SET TRANSACTION READ ONLY")
    cur.execute("START TRANSACTION")
    cur.execute("SELECT n FROM acc WHERE id = 1")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    conn.rollback()
    assert conn.stats.transactions_replayed == 0
    assert _balances(server, acc) == [(1, 100), (2, 101)]
    conn.close()


def test_every_driver_spends_a_one_shot_setting_with_the_transaction_it_lost(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    """mysqlclient reports no transaction state: the caller's rollback() after the loss
    spends the setting all the same (as it would have on the server), so the next
    statement runs on a new session without a SessionLostError."""
    if driver.name == "psycopg":
        pytest.skip("PostgreSQL has no setting for the next transaction outside one")
    _accounts(driver, dbkw)
    conn = resilient_dbapi.connect(driver.connect, **dbkw)
    session = _session(driver, conn)
    cur = conn.cursor()
    cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    cur.execute("BEGIN")
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    driver.kill(srv, session)
    with pytest.raises((resilient_dbapi.TransactionLostError, resilient_dbapi.OutcomeUnknownError)):
        cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    conn.rollback()
    cur.execute("UPDATE acc SET n = n + 1 WHERE id = 2")
    conn.commit()
    assert _driver_balances(driver, dbkw) == [(1, 100), (2, 101)]
    conn.close()


def test_a_psycopg_stream_lost_with_the_connection_is_judged_by_the_rules(
    pg_server: Any, pg_acc: dict[str, Any]
) -> None:
    """A stream whose connection dies under it, in a transaction with a write: the
    caller hears ``TransactionLostError`` (not the driver's bare error), nothing is
    committed, and the connection works again after ``rollback()``."""
    import psycopg

    conn = resilient_dbapi.connect(psycopg.connect, policies=REPLAY, **pg_acc)
    cur = conn.cursor()
    cur.execute("INSERT INTO names VALUES ('a')")
    with pytest.raises(resilient_dbapi.TransactionLostError):
        list(cur.stream("SELECT pg_terminate_backend(pg_backend_pid())"))
    conn.rollback()
    cur.execute("INSERT INTO names VALUES ('b')")
    conn.commit()
    assert conn.stats.transactions_replayed == 0
    assert _names(pg_acc) == ["b"]
    conn.close()


def test_a_commit_after_psycopgs_own_block_never_replays_what_it_committed(
    pg_server: Any, pg_acc: dict[str, Any]
) -> None:
    """The block committed 'a' past the proxy; the connection dies idle; ``commit()``
    finds it dead: there is nothing of the proxy's to commit, and nothing replayed."""
    import psycopg

    conn = resilient_dbapi.connect(psycopg.connect, policies=REPLAY, **pg_acc)
    session = _session(_PSYCOPG, conn)
    cur = conn.cursor()
    with conn.transaction():
        cur.execute("INSERT INTO names VALUES ('a')")
    _PSYCOPG.kill(pg_server, session)
    conn.commit()
    assert conn.stats.transactions_replayed == 0
    assert _names(pg_acc) == ["a"]
    conn.close()


def test_a_setting_after_an_unlogged_read_keeps_the_transaction_from_replay(
    pg_server: Any, pg_acc: dict[str, Any]
) -> None:
    """A read through a server-side cursor (its rows are not in the log), then a
    setting: the transaction the read began is still not replayable (the read could
    not be compared)."""
    import psycopg

    conn = resilient_dbapi.connect(psycopg.connect, policies=REPLAY, **pg_acc)
    session = _session(_PSYCOPG, conn)
    named = conn.cursor(name="unlogged")
    named.execute("SELECT n FROM acc WHERE id = 2")
    assert named.fetchall() == [(100,)]
    named.close()
    cur = conn.cursor()
    cur.execute("SET search_path TO public")
    cur.execute("UPDATE acc SET n = n - 10 WHERE id = 1")
    _PSYCOPG.kill(pg_server, session)
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("UPDATE acc SET n = n + 10 WHERE id = 2")
    conn.rollback()
    assert conn.stats.transactions_replayed == 0
    assert _driver_balances(_PSYCOPG, pg_acc) == [(1, 100), (2, 100)]
    conn.close()


def test_a_stream_is_checked_when_it_starts_not_when_it_is_made(
    pg_server: Any, pg_acc: dict[str, Any]
) -> None:
    """psycopg's ``stream()`` sends nothing until its first row is asked for: made in
    one transaction and read in the next, its INSERT belongs to the second, which is
    then never replayed."""
    import psycopg

    conn = resilient_dbapi.connect(psycopg.connect, policies=REPLAY, **pg_acc)
    session = _session(_PSYCOPG, conn)
    cur = conn.cursor()
    rows = cur.stream("INSERT INTO names VALUES ('b') RETURNING name")
    conn.commit()
    cur.execute("INSERT INTO names VALUES ('a')")
    assert list(rows) == [("b",)]
    _PSYCOPG.kill(pg_server, session)
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("INSERT INTO names VALUES ('c')")
    conn.rollback()
    assert conn.stats.transactions_replayed == 0
    assert _names(pg_acc) == []
    conn.close()
