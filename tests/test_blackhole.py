"""Safety at the edges: a server gone silent, and a watchdog's ``close()``.

A blackholed server (packets dropped, no reset) used to hang a statement without bound
when the connection had been used within ``idle`` seconds; ``DeadPeerTimeout`` bounds it
without capping a long query. A real silent drop on the connection's own socket is
needed to show it (a relaying proxy keeps its own socket healthy), so those scenarios
run in a child process in network and PID namespaces of its own
(``tests/blackhole_child.py``) with an nftables rule and a throwaway MariaDB there.

``close()`` from another thread used to be refused with ``ConcurrentUseError``, so
nothing could stop a statement stuck on such a server; it now aborts it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import (
    MaxAge,
    OutcomeUnknownError,
    PingOnCheckout,
    RetryOnError,
    TransactionLostError,
)

from .blackhole_child import tool_path
from .drivers import DRIVERS, Driver

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
# DeadPeerTimeout's default, in seconds. The policy is named only where a test needs it,
# so that the other tests also run (and fail) on code without it.
BOUND = 10.0


# Each driver's own socket, found the way that driver keeps it (not through the adapter
# under test).
_SOCKET: dict[str, Callable[[Any], int]] = {
    "pymysql": lambda raw: raw._sock.fileno(),
    "mysqlclient": lambda raw: raw.fileno(),
    "mysql-connector": lambda raw: raw._socket.sock.fileno(),
    "psycopg": lambda raw: raw.pgconn.socket,
}


def _settings(driver: Driver, raw: Any) -> dict[str, int]:
    """The TCP settings of ``raw``'s socket that bound a silent server."""
    tcp = socket.IPPROTO_TCP
    with socket.socket(fileno=os.dup(_SOCKET[driver.name](raw))) as sock:
        return {
            "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            "idle": sock.getsockopt(tcp, socket.TCP_KEEPIDLE),
            "interval": sock.getsockopt(tcp, socket.TCP_KEEPINTVL),
            "count": sock.getsockopt(tcp, socket.TCP_KEEPCNT),
            "user_timeout_ms": sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT),
        }


def _has_socket(driver: Driver, raw: Any) -> bool:
    try:
        return _SOCKET[driver.name](raw) >= 0
    except Exception:  # the driver dropped it: closed
        return False


def _select(conn: Any) -> Any:
    cur = conn.cursor()
    cur.execute("SELECT 42")
    row = cur.fetchone()
    cur.close()
    return tuple(row)


# -- the bound on every driver's socket ------------------------------------------------

DEFAULT_SETTINGS = {"keepalive": 1, "idle": 5, "interval": 1, "count": 5, "user_timeout_ms": 10000}


def test_the_default_bound_is_set_on_every_new_connection(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(driver.connect, **dbkw)
    assert _settings(driver, conn.raw) == DEFAULT_SETTINGS
    driver.kill(srv, driver.session_id(conn))
    conn.rollback()
    assert _select(conn) == (42,)  # on a new connection...
    assert conn.reconnects == 1
    assert _settings(driver, conn.raw) == DEFAULT_SETTINGS  # ...set up the same way
    conn.close()


def test_the_bound_follows_the_policy_and_can_be_left_out(
    driver: Driver, dbkw: dict[str, Any]
) -> None:
    others = [PingOnCheckout(), MaxAge(), RetryOnError()]
    conn = resilient_dbapi.connect(
        driver.connect, **dbkw, policies=[*others, resilient_dbapi.DeadPeerTimeout(seconds=30)]
    )
    settings = _settings(driver, conn.raw)
    assert settings["user_timeout_ms"] == 30000
    assert settings["idle"] + settings["count"] * settings["interval"] == 30
    conn.close()
    conn = resilient_dbapi.connect(driver.connect, **dbkw, policies=others)
    assert _settings(driver, conn.raw)["user_timeout_ms"] == 0  # the system's default
    conn.close()


def test_psycopg_keeps_the_callers_own_libpq_settings(pg_server: Any) -> None:
    import psycopg

    kwargs = pg_server.connect_kwargs()
    conn = resilient_dbapi.connect(psycopg.connect, **kwargs, tcp_user_timeout=3000)
    psycopg_driver = next(d for d in DRIVERS if d.name == "psycopg")
    assert _settings(psycopg_driver, conn.raw)["user_timeout_ms"] == 3000
    conn.close()


# -- a blackholed server, in a network namespace of its own ------------------------------


def _namespaces_missing() -> str | None:
    """Why the blackhole cannot be made here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux's"
    if os.geteuid() != 0:
        return "creating a network namespace and nftables rules needs root"
    missing = [tool for tool in ("unshare", "nft", "ip") if tool_path(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (./dev test installs them)"
    probe = subprocess.run(
        [str(tool_path("unshare")), "--net", str(tool_path("nft")), "add", "table", "inet", "t"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"no network namespace with nftables here: {probe.stderr.decode().strip()}"
    return None


@pytest.fixture(scope="module")
def blackhole() -> dict[str, Any]:
    """The report of ``tests/blackhole_child.py``, run once for the module (about 25 s:
    every scenario runs at once)."""
    reason = _namespaces_missing()
    if reason:
        pytest.skip(reason)
    command = [
        str(tool_path("unshare")),
        "--net",
        "--pid",
        "--mount-proc",
        "--fork",
        "--kill-child",  # the namespaces, with the rule and the server, die with it
        sys.executable,
        "-m",
        "tests.blackhole_child",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120, check=False)
    lines = done.stdout.decode().strip().splitlines()
    assert done.returncode == 0 and lines, done.stderr.decode()[-3000:]
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def test_a_long_query_outlives_the_bound(blackhole: dict[str, Any]) -> None:
    """A live server answers keepalives while it runs a query: 20 s of silence on the
    connection is no reason to give it up."""
    long = blackhole["long query"]
    assert long["outcome"] == "ok", long
    assert long["result"] == [[0]] and long["seconds"] >= 20


@pytest.mark.parametrize("name", ["pymysql", "mysqlclient", "mysql-connector", "aiomysql"])
def test_a_blackholed_write_is_found_within_the_bound(blackhole: dict[str, Any], name: str) -> None:
    """A write sent to a silent server: the driver's own OperationalError (2013) within
    about the bound, judged by the rules (autocommit: its outcome is unknown)."""
    write = blackhole[f"{name} write"]
    assert write["outcome"] == "error", write  # "hanging": still blocked after 22 s
    assert write["outcome_unknown"] and write["driver_operational"], write
    assert write["code"] == 2013
    assert write["seconds"] < 2 * BOUND


def test_a_blackholed_read_is_sent_again_on_a_new_connection(blackhole: dict[str, Any]) -> None:
    read = blackhole["pymysql read"]
    assert read["outcome"] == "ok", read
    assert read["result"] == [[0]] and read["reconnects"] == 1
    assert read["seconds"] < 2 * BOUND


def test_plain_pymysql_hangs_past_the_bound(blackhole: dict[str, Any]) -> None:
    """Without read_timeout, plain PyMySQL was still waiting 22 s later (and would wait
    some 15 minutes of retransmissions)."""
    assert blackhole["plain pymysql read"] == {"outcome": "hanging"}


# -- close() from a watchdog thread --------------------------------------------------------

_SLOW_WRITE = {
    "server": "INSERT INTO t (uid) SELECT SLEEP(30)",
    "pg_server": "INSERT INTO t (uid) SELECT 'slow' FROM pg_sleep(30)",
}


def _wait_running(driver: Driver, srv: Any, session: int) -> None:
    """Until the server runs ``session``'s statement (so it was sent whole)."""
    deadline = time.monotonic() + 10
    admin = srv.admin()
    try:
        while time.monotonic() < deadline:
            if driver.server == "server":
                with admin.cursor() as cur:
                    cur.execute(
                        "SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = %s", (session,)
                    )
                    row = cur.fetchone()
            else:
                row = admin.execute(
                    "SELECT query FROM pg_stat_activity WHERE pid = %s AND state = 'active'",
                    (session,),
                ).fetchone()
            if row and row[0] and "sleep" in row[0].lower():
                return
            time.sleep(0.02)
    finally:
        admin.close()
    raise AssertionError("the statement never started")


def _closed_under(
    driver: Driver, srv: Any, conn: Any, run: Callable[[Any], None]
) -> tuple[BaseException | None, float, float]:
    """Run ``run(conn)`` in a thread, close ``conn`` from this one once the server runs
    the statement: what the thread got, how long close() took, and how long after it
    the thread had its answer."""
    session = driver.session_id(conn)
    got: dict[str, Any] = {}

    def worker() -> None:
        try:
            run(conn)
        except BaseException as exc:
            got["error"] = exc
        else:
            got["error"] = None
        got["at"] = time.monotonic()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        _wait_running(driver, srv, session)
        closing = time.monotonic()
        conn.close()
        close_took = time.monotonic() - closing
        thread.join(10)
    finally:
        # The server would otherwise run the statement on for 30 s.
        with contextlib.suppress(Exception):
            driver.kill(srv, session)
        thread.join(10)
    assert not thread.is_alive(), "the statement was not aborted"
    return got["error"], close_took, got["at"] - closing


def _closed_for_good(driver: Driver, conn: Any) -> None:
    assert not conn.open
    assert not _has_socket(driver, conn.raw)  # the driver connection was given up
    with pytest.raises(driver.error, match="closed"):
        conn.cursor().execute("SELECT 1")


def test_close_from_another_thread_aborts_a_write(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    """close() from a watchdog thread stops a write in flight at once; the write's
    outcome is unknown (it may have been applied), never reported as success."""
    conn = resilient_dbapi.connect(driver.connect, **dbkw, autocommit=True)
    slow = _SLOW_WRITE[driver.server]
    error, close_took, answered = _closed_under(
        driver, srv, conn, lambda c: c.cursor().execute(slow)
    )
    assert isinstance(error, OutcomeUnknownError), repr(error)
    assert isinstance(error, driver.operational_error)  # the driver's own class
    assert close_took < 1 and answered < 5
    _closed_for_good(driver, conn)


def _read(conn: Any) -> None:
    conn.cursor().execute("SELECT SLEEP(30)")


def _in_transaction(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('first')")
    cur.execute("SELECT SLEEP(30)")


@pytest.mark.parametrize("driver", [DRIVERS[0]], ids=["pymysql"], indirect=True)
def test_close_from_another_thread_aborts_a_read_without_sending_it_again(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **dbkw)
    error, close_took, answered = _closed_under(driver, srv, conn, _read)
    assert type(error) is pymysql.err.OperationalError, repr(error)  # the driver's, as it is
    assert error.args[0] == 2013
    assert close_took < 1 and answered < 5
    assert conn.stats.reconnects == 0  # closed: nothing was opened to send it again
    _closed_for_good(driver, conn)


@pytest.mark.parametrize("driver", [DRIVERS[0]], ids=["pymysql"], indirect=True)
def test_close_from_another_thread_loses_an_open_transaction(
    driver: Driver, srv: Any, dbkw: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **dbkw)
    error, close_took, answered = _closed_under(driver, srv, conn, _in_transaction)
    assert isinstance(error, TransactionLostError), repr(error)
    assert close_took < 1 and answered < 5
    _closed_for_good(driver, conn)
    admin = srv.admin()
    with admin.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {dbkw['database']}.t")
        assert cur.fetchone() == (0,)  # rolled back, as the error says
    admin.close()
