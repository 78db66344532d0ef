"""The policies at work against a real MariaDB."""

from __future__ import annotations

import logging
import time
from typing import Any

import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import MaxAge, PingOnCheckout, RetryOnError
from resilient_dbapi.adapters.pymysql import PyMySQLAdapter
from resilient_dbapi.testing import FaultProxy

from .conftest import kill

pytestmark = pytest.mark.server


def _reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reason=" in r.getMessage()]


def test_max_age_recycles_between_transactions_only(
    db: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resilient_dbapi")
    conn = resilient_dbapi.connect(
        pymysql.connect, **db, policies=[MaxAge(seconds=0.5, jitter=0), RetryOnError()]
    )
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('in-txn')")
    first = conn.thread_id()
    time.sleep(0.6)
    cur.execute("INSERT INTO t (uid) VALUES ('still-in-txn')")  # never mid-transaction
    assert conn.thread_id() == first
    conn.commit()
    cur.execute("SELECT COUNT(*) FROM t")
    assert cur.fetchone() == (2,)
    assert conn.thread_id() != first
    assert any("reason=max_age" in m for m in _reasons(caplog))


def test_max_age_jitter_spreads_lifetimes(db: dict[str, Any]) -> None:
    policies = [MaxAge(seconds=100, jitter=0.5)]
    lifetimes = {
        resilient_dbapi.connect(pymysql.connect, **db, policies=policies)._engine._lifetime
        for _ in range(5)
    }
    assert len(lifetimes) == 5 and all(50 <= x <= 100 for x in lifetimes)


def test_follows_the_servers_wait_timeout(
    db: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resilient_dbapi")
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **db,
        init_command="SET SESSION wait_timeout=3",
        policies=[PingOnCheckout(skip_recent=0), MaxAge(), RetryOnError()],
    )
    first = conn.thread_id()
    time.sleep(2.8)  # past 90 % of wait_timeout, before the server closes at 3 s
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert conn.thread_id() != first
    assert [m for m in _reasons(caplog) if "reason=idle" in m]


def test_a_reconnect_reuses_the_wait_timeout_it_knows(
    server: Any, db: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One round trip less per reconnect: the same settings on the same server.
    reads: list[float | None] = []
    original = PyMySQLAdapter.wait_timeout

    def counted(self: PyMySQLAdapter, raw: Any) -> float | None:
        reads.append(original(self, raw))
        return reads[-1]

    monkeypatch.setattr(PyMySQLAdapter, "wait_timeout", counted)
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    cur = conn.cursor()
    cur.execute("SET SESSION wait_timeout = 40")  # a new value: read again
    assert reads[-1] == 40.0 and len(reads) == 2
    kill(server, conn.thread_id())
    time.sleep(PingOnCheckout().skip_recent + 0.1)
    cur.execute("SELECT @@SESSION.wait_timeout")
    assert cur.fetchone() == (40,) and conn.reconnects == 1  # replayed
    assert len(reads) == 2  # not asked again
    assert conn._engine._idle_limit == MaxAge().idle_limit(40.0)  # and still followed
    conn.close()


def test_idle_ping_finds_a_half_open_connection_within_its_timeout(
    db: dict[str, Any], proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resilient_dbapi")
    timeout = 0.5
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **{**db, "port": proxy.port},
        policies=[PingOnCheckout(idle=0.2, timeout=timeout, skip_recent=0), RetryOnError()],
    )
    proxy.blackhole()  # the socket stays open; nothing gets through any more
    time.sleep(0.3)
    started = time.monotonic()
    cur = conn.cursor()
    cur.execute("SELECT 42")
    elapsed = time.monotonic() - started
    assert cur.fetchone() == (42,)
    assert timeout * 0.9 <= elapsed < timeout * 1.1 + 1.0  # the ping's limit, plus a connect
    assert any("reason=ping" in m for m in _reasons(caplog))
