"""The users' stories against a real MariaDB: each breaks with plain PyMySQL and works
through resilient_dbapi."""

from __future__ import annotations

import threading
import time
from typing import Any

import pymysql
import pytest
import sqlalchemy

import resilient_dbapi
from resilient_dbapi import MaxAge, PingOnCheckout, RetryOnError
from resilient_dbapi.testing import MariaDBServer, free_port

from .conftest import kill, rows

pytestmark = pytest.mark.server


def test_idle_timeout_breaks_plain_pymysql(db: dict[str, Any]) -> None:
    conn = pymysql.connect(**db)
    with conn.cursor() as cur:
        cur.execute("SET SESSION wait_timeout=1")
    time.sleep(2)
    with pytest.raises(pymysql.err.OperationalError), conn.cursor() as cur:
        cur.execute("SELECT 42")


def test_idle_timeout_recovers(db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    cur.execute("SET SESSION wait_timeout=1")
    time.sleep(2)
    cur.execute("SELECT 42")
    assert cur.fetchall() == ((42,),)
    assert conn.reconnects == 1
    conn.close()


def test_kill_breaks_plain_pymysql(server: Any, db: dict[str, Any]) -> None:
    conn = pymysql.connect(**db)
    kill(server, conn.thread_id())
    with pytest.raises(pymysql.err.OperationalError), conn.cursor() as cur:
        cur.execute("SELECT 42")


@pytest.mark.parametrize("skip_recent", [0.0, 0.5])
def test_kill_recovers_before_sending(server: Any, db: dict[str, Any], skip_recent: float) -> None:
    policies = [PingOnCheckout(skip_recent=skip_recent), MaxAge(), RetryOnError()]
    conn = resilient_dbapi.connect(pymysql.connect, **db, policies=policies)
    old_thread = conn.thread_id()
    kill(server, old_thread)
    time.sleep(skip_recent)  # the socket is checked only past the skip window
    cur = conn.cursor()
    # A write, in autocommit-off mode: safe only because the dead socket is seen
    # before anything is sent.
    cur.execute("INSERT INTO t (uid) VALUES ('after-kill')")
    conn.commit()
    assert conn.thread_id() != old_thread
    assert conn.reconnects == 1
    cur.execute("SELECT uid FROM t")
    assert cur.fetchall() == (("after-kill",),)


def test_kill_right_after_use_breaks_plain_pymysql(server: Any, db: dict[str, Any]) -> None:
    conn = pymysql.connect(**db, autocommit=True)
    conn.cursor().execute("SELECT 1")
    kill(server, conn.thread_id())
    with pytest.raises(pymysql.err.OperationalError):
        conn.cursor().execute("INSERT INTO t (uid) VALUES ('after-kill')")
    assert rows(server, db, "SELECT COUNT(*) FROM t") == [(0,)]


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "first-of-transaction"])
def test_a_write_right_after_a_kill_goes_out_once_inside_the_skip_window(
    server: Any, db: dict[str, Any], autocommit: bool
) -> None:
    """skip_recent spares reads the socket check, never a write: a connection killed a
    moment after its last use is found before the write, which goes out once on a new
    connection (it used to raise OutcomeUnknownError or TransactionLostError)."""
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **db,
        autocommit=autocommit,
        policies=[PingOnCheckout(skip_recent=25.0), MaxAge(), RetryOnError()],
    )
    conn.cursor().execute("SELECT 1")
    kill(server, conn.thread_id())
    conn.cursor().execute("INSERT INTO t (uid) VALUES ('inside-window')")
    conn.commit()
    assert conn.reconnects == 1
    assert rows(server, db, "SELECT COUNT(*) FROM t WHERE uid = 'inside-window'") == [(1,)]


def test_a_read_inside_the_skip_window_is_found_by_the_statement(
    server: Any, db: dict[str, Any]
) -> None:
    """The read skips the socket check within the window: lost after it was sent, it is
    sent again transparently."""
    conn = resilient_dbapi.connect(
        pymysql.connect, **db, policies=[PingOnCheckout(skip_recent=25.0), MaxAge(), RetryOnError()]
    )
    conn.cursor().execute("SELECT 1")
    kill(server, conn.thread_id())
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM t")
    assert cur.fetchone() == (0,)
    assert conn.reconnects == 1


def _restart_in_background(server: MariaDBServer, down_for: float) -> threading.Thread:
    server.stop()

    def start_later() -> None:
        time.sleep(down_for)
        server.start()

    thread = threading.Thread(target=start_later)
    thread.start()
    return thread


def test_restart_breaks_plain_pymysql(own_server: MariaDBServer) -> None:
    conn = pymysql.connect(**own_server.connect_kwargs())
    thread = _restart_in_background(own_server, 1.0)
    try:
        with pytest.raises(pymysql.err.OperationalError), conn.cursor() as cur:
            cur.execute("SELECT 42")
    finally:
        thread.join()


def test_restart_waits_for_the_server(own_server: MariaDBServer) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **own_server.connect_kwargs())
    thread = _restart_in_background(own_server, 1.0)
    started = time.monotonic()
    try:
        cur = conn.cursor()
        cur.execute("SELECT 42")  # retries the connect until the server is back
        assert cur.fetchall() == ((42,),)
    finally:
        thread.join()
    assert time.monotonic() - started >= 0.9
    assert conn.reconnects == 1


def test_server_down_at_connect_then_back(own_server: MariaDBServer) -> None:
    thread = _restart_in_background(own_server, 1.0)
    try:
        conn = resilient_dbapi.connect(pymysql.connect, **own_server.connect_kwargs())
    finally:
        thread.join()
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)


def test_connect_gives_up_at_the_deadline() -> None:
    port = free_port()  # nothing listens there
    policies = [resilient_dbapi.RetryOnError(deadline=0.5, backoff=0.05, max_backoff=0.1)]
    started = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as info:
        resilient_dbapi.connect(
            pymysql.connect, host="127.0.0.1", port=port, user="root", policies=policies
        )
    assert info.value.args[0] == 2003
    assert 0.2 <= time.monotonic() - started < 5


def test_access_denied_is_never_retried(server: Any) -> None:
    calls = 0

    def counting_connect(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return pymysql.connect(**kwargs)

    with pytest.raises(pymysql.err.OperationalError) as info:
        resilient_dbapi.connect(
            counting_connect, **server.connect_kwargs(user="nobody", password="wrong")
        )
    assert info.value.args[0] == 1045
    assert calls == 1


def _sqlalchemy_idle_story(creator: Any) -> Any:
    engine = sqlalchemy.create_engine("mysql+pymysql://", creator=creator)
    try:
        with engine.connect() as c:
            c.exec_driver_sql("SET SESSION wait_timeout=1")
        time.sleep(2)
        with engine.connect() as c:
            return c.exec_driver_sql("SELECT 42").scalar()
    finally:
        engine.dispose()


def test_sqlalchemy_idle_timeout_breaks_without(db: dict[str, Any]) -> None:
    with pytest.raises(sqlalchemy.exc.OperationalError):
        _sqlalchemy_idle_story(lambda: pymysql.connect(**db))


def test_sqlalchemy_idle_timeout_recovers_with_creator(db: dict[str, Any]) -> None:
    assert _sqlalchemy_idle_story(resilient_dbapi.creator(pymysql.connect, **db)) == 42
