"""Events, counters and logs, against a real MariaDB."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import RetryOnError, events
from resilient_dbapi.testing import free_port

from .conftest import kill

pytestmark = pytest.mark.server


def test_events_and_stats_follow_what_happened(server: Any, db: dict[str, Any]) -> None:
    seen: list[events.Event] = []
    conn = resilient_dbapi.connect(pymysql.connect, **db, listeners=[seen.append], autocommit=True)
    assert [type(e) for e in seen] == [events.Connected]
    cur = conn.cursor()

    kill(server, conn.thread_id())
    time.sleep(0.6)  # past the skip window: found by the socket check
    cur.execute("SELECT 1")
    reconnected = seen[-1]
    assert isinstance(reconnected, events.Reconnected)
    assert reconnected.reason == "liveness" and reconnected.attempts == 1
    assert reconnected.where == f"pymysql 127.0.0.1:{db['port']}"

    killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
    killer.start()
    cur.execute("SELECT SLEEP(1)")  # killed in flight, sent again
    killer.join()
    assert any(isinstance(e, events.Retrying) and e.what == "statement" for e in seen)

    killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
    killer.start()
    with pytest.raises(resilient_dbapi.OutcomeUnknownError):  # a write killed in flight
        cur.execute("INSERT INTO t (uid) SELECT IF(SLEEP(1), 'x', 'x')")
    killer.join()
    assert isinstance(seen[-1], events.OutcomeUnknown)

    conn.autocommit(False)
    cur.execute("INSERT INTO t (uid) VALUES ('y')")
    kill(server, conn.thread_id())
    with pytest.raises(resilient_dbapi.TransactionLostError):
        cur.execute("INSERT INTO t (uid) VALUES ('z')")
    assert isinstance(seen[-1], events.TransactionLost)
    conn.rollback()
    conn.autocommit(True)

    cur.execute("SET @v = 1")
    kill(server, conn.thread_id())
    time.sleep(0.6)
    with pytest.raises(resilient_dbapi.SessionLostError):
        cur.execute("SELECT @v")
    lost = seen[-1]
    assert isinstance(lost, events.SessionLost) and lost.lost == ("user variables",)

    stats = conn.stats
    assert stats.connects == 1 + stats.reconnects
    assert stats.reconnect_reasons["liveness"] >= 1
    assert stats.statement_resends == 1
    assert (stats.outcomes_unknown, stats.transactions_lost, stats.sessions_lost) == (1, 1, 1)


def test_idle_pings_are_counted(db: dict[str, Any]) -> None:
    seen: list[events.Event] = []
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **db,
        listeners=[seen.append],
        policies=[resilient_dbapi.PingOnCheckout(idle=0.1, skip_recent=0)],
    )
    time.sleep(0.15)
    conn.cursor().execute("SELECT 1")
    pings = [e for e in seen if isinstance(e, events.Pinged)]
    assert len(pings) == 1 and pings[0].ok
    assert conn.stats.pings == 1


def test_gave_up_after_the_deadline() -> None:
    seen: list[events.Event] = []
    with pytest.raises(pymysql.err.OperationalError):
        resilient_dbapi.connect(
            pymysql.connect,
            host="127.0.0.1",
            port=free_port(),
            user="root",
            listeners=[seen.append],
            policies=[resilient_dbapi.RetryOnError(attempts=3, backoff=0.01, max_backoff=0.01)],
        )
    assert [type(e) for e in seen] == [events.Retrying, events.Retrying, events.GaveUp]
    assert seen[-1].attempts == 3  # type: ignore[attr-defined]
    assert seen[0].code == 2003  # type: ignore[attr-defined]


def test_global_listeners_and_broken_listeners(
    db: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[events.Event] = []

    def broken(event: events.Event) -> None:
        raise RuntimeError("listener bug")

    events.add_listener(seen.append)
    try:
        conn = resilient_dbapi.connect(pymysql.connect, **db, listeners=[broken])
    finally:
        events.remove_listener(seen.append)
    assert [type(e) for e in seen] == [events.Connected]
    assert "listener" in caplog.text and "failed" in caplog.text
    conn.cursor().execute("SELECT 1")  # the connection works all the same
    with pytest.raises(TypeError, match="listener must be callable"):
        resilient_dbapi.connect(pymysql.connect, **db, listeners=["print"])


def test_logs_name_reason_and_code_but_never_secrets(
    server: Any, db: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "log-s3cret-PW"
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'logged'@'%%' IDENTIFIED BY %s", (secret,))
        cur.execute(f"GRANT ALL ON {db['database']}.* TO 'logged'@'%'")
    caplog.set_level(logging.DEBUG, logger="resilient_dbapi")
    conn = resilient_dbapi.connect(
        pymysql.connect, **{**db, "user": "logged", "password": secret, "autocommit": True}
    )
    cur = conn.cursor()
    cur.execute("SET @param = %s", ("param-s3cret",))
    kill(server, conn.thread_id())
    time.sleep(0.6)
    with pytest.raises(resilient_dbapi.SessionLostError):
        cur.execute("INSERT INTO t (uid) VALUES (%s)", ("param-s3cret",))
    kill(server, conn.thread_id())
    time.sleep(0.6)
    cur.execute("SELECT %s", ("param-s3cret",))
    records = caplog.records
    reconnect = [r for r in records if "reconnected" in r.getMessage()]
    assert reconnect and reconnect[0].levelno == logging.WARNING  # lost, then replaced
    assert re.search(r"reason=liveness, error=None", reconnect[0].getMessage())
    lost = [r for r in records if "session lost" in r.getMessage()]
    assert lost and lost[0].levelno == logging.WARNING
    assert not [r for r in records if secret in r.getMessage() or "s3cret" in r.getMessage()]


def test_reconnect_after_an_error_names_the_error_and_pings_count(
    server: Any, db: dict[str, Any]
) -> None:
    seen: list[events.Event] = []
    conn = resilient_dbapi.connect(pymysql.connect, **db, listeners=[seen.append], autocommit=True)
    killer = threading.Timer(0.3, kill, (server, conn.thread_id()))
    killer.start()
    with pytest.raises(resilient_dbapi.OutcomeUnknownError):  # a write killed in flight
        conn.cursor().execute("INSERT INTO t (uid) SELECT IF(SLEEP(1), 'x', 'x')")
    killer.join()
    conn.cursor().execute("SELECT 1")
    reconnected = [e for e in seen if isinstance(e, events.Reconnected)]
    assert reconnected[-1].reason == "error" and reconnected[-1].code == 2013
    conn.ping()
    assert conn.stats.pings == 1


def test_error_messages_never_show_the_arguments() -> None:
    db = {"host": "db", "password": "s3cret-in-dict"}
    for call in (
        lambda: resilient_dbapi.connect(db),  # type: ignore[arg-type]
        lambda: resilient_dbapi.creator(pymysql.connect, policies=db),  # type: ignore[arg-type]
        lambda: resilient_dbapi.connect(pymysql.connect, on_connect=db),  # type: ignore[arg-type]
        lambda: resilient_dbapi.connect(pymysql.connect, listeners=db),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError) as info:
            call()
        assert "s3cret" not in str(info.value)


def test_a_failed_connect_names_the_host_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before, a connect retried through an outage logged a WARNING per attempt (19 for
    the default policies) naming ``pymysql.connections.Connection``, not the server;
    now one WARNING says how the outage ended, each attempt is at DEBUG."""
    port = free_port()  # nothing listens there
    caplog.set_level(logging.DEBUG, logger="resilient_dbapi")
    with pytest.raises(pymysql.err.OperationalError) as info:
        resilient_dbapi.connect(
            pymysql.connect,
            host="127.0.0.1",
            port=port,
            user="root",
            password="",
            policies=[RetryOnError(attempts=5, backoff=0.01, max_backoff=0.02)],
        )
    assert info.value.args[0] == 2003
    ours = [r for r in caplog.records if r.name.startswith("resilient_dbapi")]
    warnings = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "gave up" in warnings[0] and "5 attempts" in warnings[0]
    attempts = [r for r in ours if r.levelno == logging.DEBUG and "attempt" in r.getMessage()]
    assert len(attempts) == 4  # attempts 1 to 4 failed and were retried
    assert {r.name for r in ours} == {"resilient_dbapi.connect"}
    assert all(f"pymysql 127.0.0.1:{port}" in r.getMessage() for r in ours)


def test_a_connect_that_succeeds_after_retries_is_one_warning(
    db: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    failures = iter([2, 1])

    def flaky(**kwargs: Any) -> Any:
        if next(failures, 0):
            raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server")
        return pymysql.connect(**kwargs)

    caplog.set_level(logging.DEBUG, logger="resilient_dbapi")
    conn = resilient_dbapi.connect(
        flaky, **db, policies=[RetryOnError(attempts=5, backoff=0.01, max_backoff=0.02)]
    )
    conn.close()
    ours = [r for r in caplog.records if r.name.startswith("resilient_dbapi")]
    warnings = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "after 3 attempts" in warnings[0], warnings
    assert sum(r.levelno == logging.DEBUG for r in ours) == 2


def test_a_lost_connection_replaced_is_one_warning_naming_why(
    server: Any, db: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilient_dbapi")
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    kill(server, conn.thread_id())
    cur.execute("SELECT 1")  # within the skip window: fails, and is sent again
    assert cur.fetchall() == ((1,),)
    assert conn.stats.statement_resends == 1
    ours = [r for r in caplog.records if r.name == "resilient_dbapi.connection"]
    warnings = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert re.search(
        rf"connection to pymysql 127\.0\.0\.1:{db['port']} lost \(reason=error, error=2013\): "
        r"reconnected in [0-9.]+ ms$",
        warnings[0],
    )
    assert any(
        "sending the statement again" in r.getMessage() for r in ours if r.levelno == logging.DEBUG
    )


def test_nothing_is_printed_when_the_application_configures_no_logging(
    server: Any, db: dict[str, Any], tmp_path: Path
) -> None:
    """A library's warnings go where the application's logging sends them: without a
    handler of ours, Python's last-resort handler printed each to stderr."""
    script = tmp_path / "quiet.py"
    script.write_text(
        "import sys, pymysql, resilient_dbapi\n"
        "from resilient_dbapi.testing import kill_connection\n"
        f"kwargs = {db!r}\n"
        "admin = pymysql.connect(**{**kwargs, 'autocommit': True})\n"
        "conn = resilient_dbapi.connect(pymysql.connect, **kwargs, autocommit=True)\n"
        "cur = conn.cursor()\n"
        "cur.execute('SELECT 1')\n"
        "kill_connection(admin, conn.thread_id(), wait=10.0)\n"
        "cur.execute('SELECT 1')\n"
        "assert conn.stats.statement_resends == 1\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
