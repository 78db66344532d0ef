"""PostgreSQL streaming replication for psycopg with ``hosts=``: a real primary and its
synchronous hot standby (``pg_basebackup -R``), the role targets, and failover drills in
which the primary dies (a crash, or a fast shutdown ending every session with 57P01) and
the standby is promoted (``pg_promote()``) under writers. Each also shows plain psycopg."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import psycopg
import pytest

import resilient_dbapi
from resilient_dbapi import TransactionLostError, run_transaction
from resilient_dbapi.events import Event, HostPassedOver
from resilient_dbapi.testing import StandbyPair, failover_drill


@pytest.fixture
def pg_pair(standby_pair: StandbyPair) -> StandbyPair:
    return standby_pair  # the plugin's


def _connect(pair: StandbyPair, **kwargs: Any) -> Any:
    return resilient_dbapi.connect(
        psycopg.connect, hosts=pair.hosts(), **pair.app_kwargs(**{"autocommit": True, **kwargs})
    )


def _port(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('port')::int")
        return int(cur.fetchone()[0])


def test_the_targets_choose_the_primary_or_the_standby(pg_pair: StandbyPair) -> None:
    events: list[Event] = []
    primary = _connect(pg_pair)
    assert _port(primary) == pg_pair.primary.port
    standby = _connect(pg_pair, target="replica", listeners=[events.append])
    assert _port(standby) == pg_pair.replica.port
    passed = [(e.where, e.why) for e in events if isinstance(e, HostPassedOver)]
    assert passed == [(f"127.0.0.1:{pg_pair.primary.port}", "writable")]
    with primary.cursor() as cur:
        cur.execute("CREATE TABLE t (uid TEXT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES ('p1')")
    with standby.cursor() as cur:  # synchronous: already there
        cur.execute("SELECT uid FROM t")
        assert cur.fetchall() == [("p1",)]
    primary.close()
    standby.close()


@pytest.mark.parametrize("fast", [False, True], ids=["crash", "fast-shutdown-57P01"])
def test_writers_follow_the_promoted_standby(pg_pair: StandbyPair, fast: bool) -> None:
    """Four writers through one ``creator()``; the primary dies, the standby is promoted.
    Every acknowledged write is on it once, and every writer writes again. Plain psycopg
    on the primary's address is left with a dead connection it cannot replace."""
    plain = psycopg.connect(**pg_pair.primary.connect_kwargs(autocommit=True))
    make = resilient_dbapi.creator(
        psycopg.connect, hosts=pg_pair.hosts(), **pg_pair.app_kwargs(autocommit=True)
    )
    drill = failover_drill(
        pg_pair,
        make,
        writers=4,
        before=100,
        after=30,
        stop_primary=lambda: pg_pair.kill_primary(fast=fast),
    )
    check = drill.check
    assert check.ok, check
    assert check.stored >= 100 + 4 * 30
    assert drill.acknowledged_after >= 4 * 30
    with pytest.raises(psycopg.OperationalError):
        plain.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError):
        plain.execute("SELECT 1")  # and stays dead
    plain.close()


def test_a_transaction_open_at_the_failover_runs_again_on_the_promoted_standby(
    pg_pair: StandbyPair,
) -> None:
    with contextlib.closing(pg_pair.primary.admin()) as admin:
        admin.execute("CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL)")
        admin.execute("INSERT INTO accounts VALUES (1, 100), (2, 0)")
    pg_pair.wait_caught_up()
    conn = _connect(pg_pair, autocommit=False)
    attempts = [0]

    def transfer(c: Any) -> None:
        attempts[0] += 1
        with c.cursor() as cur:
            cur.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1")
            if attempts[0] == 1:
                pg_pair.kill_primary()
                pg_pair.promote()
            cur.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 2")

    run_transaction(conn, transfer)
    assert attempts[0] == 2
    assert _port(conn) == pg_pair.replica.port
    with contextlib.closing(pg_pair.replica.admin()) as admin:
        rows = admin.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall()
    assert rows == [(1, 90), (2, 10)]  # once, whole
    conn.close()


def test_a_transaction_lost_in_the_failover_is_reported_not_half_committed(
    pg_pair: StandbyPair,
) -> None:
    with contextlib.closing(pg_pair.primary.admin()) as admin:
        admin.execute("CREATE TABLE t (uid TEXT PRIMARY KEY)")
    pg_pair.wait_caught_up()
    conn = _connect(pg_pair, autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES ('a')")
    pg_pair.kill_primary()
    pg_pair.promote()
    with pytest.raises(TransactionLostError) as lost, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES ('b')")
    assert isinstance(lost.value, psycopg.OperationalError)
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES ('c')")
    conn.commit()
    with contextlib.closing(pg_pair.replica.admin()) as admin:
        assert admin.execute("SELECT uid FROM t").fetchall() == [("c",)]
    conn.close()


def test_a_write_refused_by_the_standby_goes_to_the_primary(pg_pair: StandbyPair) -> None:
    """``target="any"`` with the standby first: a write it refuses (25006) is sent again on
    the primary, once. Plain psycopg on the standby gets the refusal."""
    with contextlib.closing(pg_pair.primary.admin()) as admin:
        admin.execute("CREATE TABLE t (uid TEXT PRIMARY KEY)")
    pg_pair.wait_caught_up()
    plain = psycopg.connect(**pg_pair.replica.connect_kwargs(autocommit=True))
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        plain.execute("INSERT INTO t VALUES ('p')")
    plain.close()
    conn = resilient_dbapi.connect(
        psycopg.connect,
        hosts=list(reversed(pg_pair.hosts())),
        target="any",
        **pg_pair.app_kwargs(autocommit=True),
    )
    assert _port(conn) == pg_pair.replica.port
    with conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES ('r')")
    assert _port(conn) == pg_pair.primary.port
    with contextlib.closing(pg_pair.primary.admin()) as admin:
        assert admin.execute("SELECT uid FROM t").fetchall() == [("r",)]
    conn.close()


def test_the_cluster_profile_waits_out_a_slow_promotion(pg_pair: StandbyPair) -> None:
    """The primary dies and the standby is promoted 10 s later (an orchestrator noticing).
    With the default policies a connection gives up after 20 rounds over the hosts
    (NoSuitableHostError, nothing sent); with ``policies="postgres_streaming"`` it keeps
    going for up to a minute and the write goes out once, on the promoted standby."""
    with contextlib.closing(pg_pair.primary.admin()) as admin:
        admin.execute("CREATE TABLE t (uid TEXT PRIMARY KEY)")
    pg_pair.wait_caught_up()
    default = _connect(pg_pair)
    profiled = _connect(pg_pair, policies="postgres_streaming")
    for conn in (default, profiled):
        assert _port(conn) == pg_pair.primary.port
    pg_pair.kill_primary()
    outcome: dict[str, Any] = {}

    def promote() -> None:
        time.sleep(10.0)
        try:
            pg_pair.promote()
        except Exception as exc:
            outcome["promotion"] = exc

    promoter = threading.Thread(target=promote)
    promoter.start()

    def write(name: str, conn: Any) -> None:
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (%s)", (name,))
            outcome[name] = "written"
        except Exception as exc:
            outcome[name] = exc

    threads = [
        threading.Thread(target=write, args=("default", default)),
        threading.Thread(target=write, args=("profiled", profiled)),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        promoter.join(60)
    assert "promotion" not in outcome, outcome
    assert isinstance(outcome["default"], resilient_dbapi.NoSuitableHostError), outcome
    assert "nothing was sent" in str(outcome["default"])
    assert outcome["profiled"] == "written"
    with contextlib.closing(pg_pair.replica.admin()) as admin:
        assert admin.execute("SELECT uid FROM t").fetchall() == [("profiled",)]
    default.close()
    profiled.close()
