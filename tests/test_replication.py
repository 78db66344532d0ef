"""ReplicatedPair: a MariaDB primary and a read-only replica that a failover promotes
without losing an acknowledged write. Real servers (Debian's mariadbd), plain PyMySQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pymysql
import pytest

from resilient_dbapi.testing import ReplicatedPair, WriteLedger

pytestmark = pytest.mark.server

# 2006: server gone away (the kill came between two writes); 2013: lost during a query.
CONNECTION_LOST = {2006, 2013}


@pytest.fixture
def pair(replicated_pair: ReplicatedPair) -> ReplicatedPair:
    started = replicated_pair  # the plugin's
    connection = started.primary.admin()
    with connection.cursor() as cur:
        cur.execute(f"CREATE TABLE {started.database}.t (id VARCHAR(64) PRIMARY KEY)")
    connection.close()
    started.wait_caught_up()
    return started


def connect(pair: ReplicatedPair, index: int, **overrides: Any) -> Any:
    """The app user's connection to ``pair.hosts()[index]`` (0: primary, 1: replica)."""
    host, port = pair.hosts()[index]
    return pymysql.connect(
        host=host,
        port=port,
        **pair.app_kwargs(autocommit=True, connect_timeout=5, read_timeout=10, **overrides),
    )


def stored_ids(pair: ReplicatedPair, index: int) -> list[str]:
    connection = connect(pair, index)
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT id FROM t")
            return [row[0] for row in cur.fetchall()]
    finally:
        connection.close()


def insert(pair: ReplicatedPair, index: int, uid: str) -> None:
    connection = connect(pair, index)
    try:
        with connection.cursor() as cur:
            cur.execute("INSERT INTO t (id) VALUES (%s)", (uid,))
    finally:
        connection.close()


def test_a_write_on_the_primary_reaches_the_replica(pair: ReplicatedPair) -> None:
    insert(pair, 0, "first")
    pair.wait_caught_up()
    assert stored_ids(pair, 1) == ["first"]
    assert pair.writable() is pair.primary


def test_the_app_user_cannot_write_to_the_replica(pair: ReplicatedPair) -> None:
    with pytest.raises(pymysql.err.OperationalError) as refused:
        insert(pair, 1, "on-the-replica")
    assert refused.value.args[0] == 1290  # --read-only
    assert stored_ids(pair, 1) == []


def test_failover_keeps_every_acknowledged_write(pair: ReplicatedPair) -> None:
    # Several writers keep the replica's SQL thread behind what it has received, so a
    # promotion that skipped applying the relay log loses writes (seen with 8, not 1).
    ledger = WriteLedger()
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(connection: Any) -> None:
        with connection.cursor() as cur:
            while not stop.is_set():
                uid = ledger.new_id()
                try:
                    cur.execute("INSERT INTO t (id) VALUES (%s)", (uid,))
                except BaseException as exc:
                    ledger.outcome_unknown([uid])
                    errors.append(exc)
                    return
                ledger.acknowledge([uid])

    connections = [connect(pair, 0) for _ in range(8)]
    writers = [threading.Thread(target=write, args=(c,)) for c in connections]
    for writer in writers:
        writer.start()
    try:
        deadline = time.monotonic() + 5
        while len(ledger.acknowledged) < 200:
            assert time.monotonic() < deadline, f"too slow or failed: {errors}"
            time.sleep(0.005)
        pair.kill_primary()
        for writer in writers:
            writer.join(timeout=10)
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=10)
        for connection in connections:
            connection.close()

    # Every writer stopped on the kill: its connection was lost, not refused.
    assert len(errors) == len(writers)
    for error in errors:
        assert isinstance(error, pymysql.err.OperationalError)
        assert error.args[0] in CONNECTION_LOST
    with pytest.raises(pymysql.err.OperationalError) as refused:
        connect(pair, 0)
    assert refused.value.args[0] == 2003

    took = pair.promote()
    assert took < 5
    assert pair.writable() is pair.replica
    check = ledger.check(stored_ids(pair, 1))
    assert check.ok, check
    assert check.stored >= len(ledger.acknowledged) >= 200

    insert(pair, 1, "after-promotion")
    assert "after-promotion" in stored_ids(pair, 1)
