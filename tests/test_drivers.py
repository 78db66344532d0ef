"""The story suite, for every driver against its own real server: each story breaks
with the plain driver and works (or fails precisely) through resilient_dbapi.

MariaDB serves PyMySQL, mysqlclient and mysql-connector-python; PostgreSQL 15 serves
psycopg (``idle_session_timeout``, ``pg_terminate_backend``, a restart).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import resilient_dbapi
from resilient_dbapi import OutcomeUnknownError, PingOnCheckout, TransactionLostError

from .drivers import Driver, count_rows

pytestmark = pytest.mark.server


@pytest.fixture
def plain(driver: Driver) -> Iterator[Any]:
    """Opens plain driver connections, closed (whatever state they are in) after the test."""
    opened: list[Any] = []

    def connect(kwargs: dict[str, Any], **extra: Any) -> Any:
        conn = driver.connect(**kwargs, **extra)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        with contextlib.suppress(Exception):
            conn.close()


def _resilient(driver: Driver, kwargs: dict[str, Any], **extra: Any) -> Any:
    return resilient_dbapi.connect(driver.connect, **kwargs, **extra)


def _select(conn: Any, sql: str = "SELECT 42") -> list[Any]:
    cur = conn.cursor()
    cur.execute(sql)
    rows = [tuple(row) for row in cur.fetchall()]
    cur.close()
    return rows


def _kill_later(driver: Driver, srv: Any, session: int, after: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(after), driver.kill(srv, session)))
    thread.start()
    return thread


# -- idle timeout (MariaDB wait_timeout; PostgreSQL idle_session_timeout) -------------


def test_idle_timeout_breaks_the_plain_driver(
    driver: Driver, dbkw: dict[str, Any], plain: Any
) -> None:
    conn = plain(dbkw, autocommit=True)
    conn.cursor().execute(driver.idle_timeout_sql)
    time.sleep(2)
    with pytest.raises(driver.error):
        _select(conn)


def test_idle_timeout_recovers(driver: Driver, dbkw: dict[str, Any]) -> None:
    conn = _resilient(driver, dbkw, autocommit=True)
    conn.cursor().execute(driver.idle_timeout_sql)
    time.sleep(2)
    assert _select(conn) == [(42,)]
    assert conn.reconnects == 1
    # The setting was journaled and replayed: the new session times out as well.
    time.sleep(2)
    assert _select(conn) == [(42,)]
    assert conn.reconnects == 2
    conn.close()


# -- killed by the server (KILL CONNECTION; pg_terminate_backend) ----------------------


def test_kill_breaks_the_plain_driver(
    driver: Driver, srv: Any, dbkw: dict[str, Any], plain: Any
) -> None:
    conn = plain(dbkw)
    driver.kill(srv, driver.session_id(conn))
    with pytest.raises(driver.error):
        _select(conn)


def test_kill_recovers_before_sending_a_write(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    conn = _resilient(driver, dbkw)  # autocommit off: the drivers' default
    session = driver.session_id(conn)
    conn.commit()
    driver.kill(srv, session)
    time.sleep(PingOnCheckout().skip_recent)  # the socket is checked past the skip window
    # A write is safe only because the dead connection is found before it is sent.
    conn.cursor().execute("INSERT INTO t (uid) VALUES ('after-kill')")
    conn.commit()
    assert conn.reconnects == 1
    assert driver.session_id(conn) != session
    assert count_rows(driver, dbkw) == 1
    conn.close()


# -- server restart ----------------------------------------------------------------------


def test_restart_breaks_the_plain_driver(
    driver: Driver, request: pytest.FixtureRequest, plain: Any
) -> None:
    own = request.getfixturevalue(driver.own_server)
    conn = plain(driver.translate(own.connect_kwargs()))
    own.restart(down_for=0.2)
    with pytest.raises(driver.error):
        _select(conn)


def test_restart_waits_for_the_server(driver: Driver, request: pytest.FixtureRequest) -> None:
    own = request.getfixturevalue(driver.own_server)
    conn = _resilient(driver, driver.translate(own.connect_kwargs()))
    own.stop()
    thread = threading.Thread(target=lambda: (time.sleep(1.0), own.start()))
    thread.start()
    started = time.monotonic()
    try:
        assert _select(conn) == [(42,)]  # connects again once the server is back
    finally:
        thread.join()
    assert time.monotonic() - started >= 0.9
    assert conn.reconnects == 1
    conn.close()


# -- a transaction with writes lost ------------------------------------------------------


def test_transaction_lost_raises_and_commits_nothing(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    """Rolled back when the server can prove it (``proves_rollback``); otherwise of
    unknown outcome (a MyISAM write would have stayed): never a silent new session."""
    lost = TransactionLostError if driver.proves_rollback else OutcomeUnknownError
    conn = _resilient(driver, dbkw)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('first')")
    driver.kill(srv, driver.session_id(conn))
    with pytest.raises(lost) as caught:
        cur.execute("INSERT INTO t (uid) VALUES ('second')")
    assert isinstance(caught.value, driver.operational_error)  # the driver's own class
    with pytest.raises(lost):
        conn.commit()  # the rest of the transaction cannot be committed on its own
    conn.rollback()
    assert count_rows(driver, dbkw) == 0
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('again')")
    conn.commit()
    assert count_rows(driver, dbkw) == 1
    conn.close()


def test_transaction_lost_plain_driver_loses_the_first_write(
    driver: Driver, srv: Any, dbkw: dict[str, Any], plain: Any
) -> None:
    conn = plain(dbkw)
    conn.cursor().execute("INSERT INTO t (uid) VALUES ('first')")
    driver.kill(srv, driver.session_id(conn))
    with pytest.raises(driver.error):
        conn.cursor().execute("INSERT INTO t (uid) VALUES ('second')")
    assert count_rows(driver, dbkw) == 0


# -- killed in flight --------------------------------------------------------------------


def test_write_killed_in_flight_is_never_sent_twice(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    conn = _resilient(driver, dbkw, autocommit=True)
    thread = _kill_later(driver, srv, driver.session_id(conn), 0.5)
    try:
        with pytest.raises(OutcomeUnknownError) as caught:
            conn.cursor().execute(driver.slow_write_sql)
    finally:
        thread.join()
    assert isinstance(caught.value, driver.operational_error)
    assert count_rows(driver, dbkw) <= 1  # applied at most once, never re-sent
    assert _select(conn) == [(42,)]  # the next statement gets a new connection
    conn.close()


def test_read_killed_in_flight_is_sent_again(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    conn = _resilient(driver, dbkw, autocommit=True)
    thread = _kill_later(driver, srv, driver.session_id(conn), 0.3)
    try:
        assert _select(conn, driver.slow_read_sql) == [(42,)]
    finally:
        thread.join()
    assert conn.reconnects == 1
    conn.close()


def test_read_killed_in_flight_breaks_the_plain_driver(
    driver: Driver, srv: Any, dbkw: dict[str, Any], plain: Any
) -> None:
    conn = plain(dbkw, autocommit=True)
    thread = _kill_later(driver, srv, driver.session_id(conn), 0.3)
    try:
        with pytest.raises(driver.error):
            _select(conn, driver.slow_read_sql)
    finally:
        thread.join()
