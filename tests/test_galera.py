"""A real three-node MariaDB Galera Cluster: a node that leaves the primary component
(1047 to anything touching a table), one that is up but not Synced, a certification
conflict at COMMIT (1213), and a drill that isolates, kills and freezes nodes under
writers. Each scenario also shows what plain PyMySQL does."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiomysql
import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import RetryOnError, TransactionLostError, aio, run_transaction
from resilient_dbapi.events import Event, HostPassedOver
from resilient_dbapi.testing import GaleraCluster, galera_drill

QUICK = [RetryOnError(attempts=5, backoff=0.01, max_backoff=0.05)]


@pytest.fixture(scope="module")
def cluster(galera_cluster: GaleraCluster) -> GaleraCluster:
    started = galera_cluster  # the plugin's
    with contextlib.closing(started.admin(0)) as admin, admin.cursor() as cur:
        cur.execute("CREATE TABLE app.t (uid VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("CREATE TABLE app.counter (id INT PRIMARY KEY, n INT) ENGINE=InnoDB")
    return started


@pytest.fixture
def galera(cluster: GaleraCluster) -> GaleraCluster:
    """The cluster whole again (every node back and Synced), its tables emptied."""
    for index in range(len(cluster.nodes)):
        with (
            contextlib.suppress(pymysql.err.MySQLError),  # down, frozen: rejoined below
            contextlib.closing(cluster.admin(index, read_timeout=2)) as admin,
            admin.cursor() as cur,
        ):
            cur.execute("SET SESSION wsrep_sync_wait = 0")
            cur.execute("SET GLOBAL wsrep_desync = OFF")
            cur.execute("SET GLOBAL wsrep_reject_queries = NONE")
            cur.execute("SET GLOBAL wsrep_sync_wait = 0")
    cluster.wait_whole()
    with contextlib.closing(cluster.admin(0)) as admin, admin.cursor() as cur:
        cur.execute("DELETE FROM app.t")
        cur.execute("DELETE FROM app.counter")
        cur.execute("INSERT INTO app.counter VALUES (1, 0)")
    return cluster


def _hosts(cluster: GaleraCluster, *order: int) -> list[tuple[str, int]]:
    hosts = cluster.hosts()
    return [hosts[i] for i in order]


def _connect(cluster: GaleraCluster, *order: int, **kwargs: Any) -> Any:
    return resilient_dbapi.connect(
        pymysql.connect,
        hosts=_hosts(cluster, *order),
        policies=QUICK,
        **cluster.app_kwargs(**{"autocommit": True, "read_timeout": 5, **kwargs}),
    )


def _plain(cluster: GaleraCluster, index: int, **kwargs: Any) -> Any:
    return pymysql.connect(
        host="127.0.0.1",
        port=cluster.nodes[index].port,
        **cluster.app_kwargs(**{"autocommit": True, "read_timeout": 5, **kwargs}),
    )


def _port(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT @@port")
        return int(cur.fetchone()[0])


def _uids(cluster: GaleraCluster, index: int = 0) -> list[str]:
    with contextlib.closing(cluster.admin(index)) as admin, admin.cursor() as cur:
        cur.execute("SELECT uid FROM app.t ORDER BY uid")
        return [row[0] for row in cur.fetchall()]


def _count(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM app.t")
        return int(cur.fetchone()[0])


def test_a_read_on_a_node_that_left_the_primary_component_goes_to_another(
    galera: GaleraCluster,
) -> None:
    events: list[Event] = []
    conn = _connect(galera, 2, 0, 1, listeners=[events.append])
    plain = _plain(galera, 2)
    assert _port(conn) == galera.nodes[2].port and _count(conn) == 0
    galera.isolate(2)
    # Plain PyMySQL stays on the node, which refuses anything touching a table.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _count(plain)
    assert refused.value.args[0] == 1047
    with pytest.raises(pymysql.err.OperationalError):
        _count(plain)  # and goes on refusing
    plain.close()
    # Refused before it ran, so sent again on a node of the primary component.
    assert _count(conn) == 0
    assert _port(conn) == galera.nodes[0].port
    passed = [e for e in events if isinstance(e, HostPassedOver)]
    assert (passed[0].where, passed[0].why, passed[0].code) == (
        f"127.0.0.1:{galera.nodes[2].port}",
        "stopped serving",
        1047,
    )
    conn.close()


def test_a_drained_node_is_left_before_a_refused_read_and_passed_over(
    galera: GaleraCluster,
) -> None:
    """``wsrep_reject_queries = ALL`` (how operators drain a node) refuses with 1047 while
    the node stays Synced."""
    conn = _connect(galera, 2, 0, 1)
    assert _port(conn) == galera.nodes[2].port
    with contextlib.closing(galera.admin(2)) as admin, admin.cursor() as cur:
        cur.execute("SET GLOBAL wsrep_reject_queries = ALL")
    plain = _plain(galera, 2)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _count(plain)
    assert refused.value.args[0] == 1047
    plain.close()
    assert _count(conn) == 0 and _port(conn) == galera.nodes[0].port
    conn.close()
    fresh = _connect(galera, 2, 0, 1)
    assert _port(fresh) == galera.nodes[0].port
    fresh.close()


def test_a_node_that_left_under_wsrep_sync_wait_is_left_too(galera: GaleraCluster) -> None:
    """With ``wsrep_sync_wait`` (causal reads; bit 8: SHOW waits too) a node outside the
    primary component answers 1205, a lock wait timeout, to what touches no table: the
    role question included."""
    with contextlib.closing(galera.admin(2)) as admin, admin.cursor() as cur:
        cur.execute("SET GLOBAL wsrep_sync_wait = 15")
    conn = _connect(galera, 2, 0, 1)
    plain = _plain(galera, 2)
    assert _port(conn) == galera.nodes[2].port and _count(conn) == 0
    galera.isolate(2)
    with pytest.raises(pymysql.err.OperationalError) as stopped, plain.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES LIKE 'read_only'")
    assert stopped.value.args[0] == 1205
    plain.close()
    assert _count(conn) == 0 and _port(conn) == galera.nodes[0].port
    conn.close()
    fresh = _connect(galera, 2, 0, 1)  # its role question gets 1205 too: not ready
    assert _port(fresh) == galera.nodes[0].port
    fresh.close()


def test_a_write_refused_by_a_node_that_left_is_sent_again_once(galera: GaleraCluster) -> None:
    conn = _connect(galera, 2, 0, 1)
    assert _port(conn) == galera.nodes[2].port
    galera.isolate(2)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO app.t (uid) VALUES ('w1')")
    galera.rejoin(2)
    for index in range(3):  # once, on every node
        assert _uids(galera, index) == ["w1"]
    conn.close()


def test_a_transaction_on_a_node_that_left_is_lost_with_nothing_committed(
    galera: GaleraCluster,
) -> None:
    conn = _connect(galera, 2, 0, 1, autocommit=False)
    plain = _plain(galera, 2, autocommit=False)
    for c, uid in ((conn, "r1"), (plain, "p1")):
        with c.cursor() as cur:
            cur.execute("INSERT INTO app.t (uid) VALUES (%s)", (uid,))
    galera.isolate(2)
    # Plain PyMySQL: COMMIT is refused and the transaction stays open on the cut-off
    # node, where every later statement is refused too.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        plain.commit()
    assert refused.value.args[0] == 1047
    with plain.cursor() as cur:
        cur.execute("SELECT @@in_transaction")
        assert cur.fetchone()[0] == 1
    plain.close()
    with pytest.raises(TransactionLostError) as lost:
        conn.commit()
    assert lost.value.args[0] == 1047 and isinstance(lost.value, pymysql.err.OperationalError)
    assert "stopped serving" in str(lost.value)
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO app.t (uid) VALUES ('r2')")
    conn.commit()
    assert _port(conn) != galera.nodes[2].port
    galera.rejoin(2)
    for index in range(3):
        assert _uids(galera, index) == ["r2"]  # neither r1 nor p1 was ever committed
    conn.close()


def test_a_node_up_but_not_synced_is_passed_over_at_connect(galera: GaleraCluster) -> None:
    with contextlib.closing(galera.admin(0)) as admin, admin.cursor() as cur:
        cur.execute("SET GLOBAL wsrep_desync = ON")  # Donor/Desynced: lags, may block
        cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_local_state'")
        assert cur.fetchone()[1] == "2"
    events: list[Event] = []
    conn = _connect(galera, 0, 1, 2, listeners=[events.append])
    assert _port(conn) == galera.nodes[1].port
    passed = [(e.where, e.why) for e in events if isinstance(e, HostPassedOver)]
    assert passed == [(f"127.0.0.1:{galera.nodes[0].port}", "not ready")]
    conn.close()
    # target="any" asks nothing at connect: it takes the first node, as plain PyMySQL.
    anything = _connect(galera, 0, 1, 2, target="any")
    assert _port(anything) == galera.nodes[0].port
    anything.close()


def test_a_node_outside_the_primary_component_is_passed_over_at_connect(
    galera: GaleraCluster,
) -> None:
    galera.isolate(0)
    conn = _connect(galera, 0, 1, 2)
    assert _port(conn) == galera.nodes[1].port and _count(conn) == 0
    conn.close()


def test_a_certification_conflict_at_commit_runs_the_unit_of_work_again(
    galera: GaleraCluster,
) -> None:
    """Two nodes change the same row at once: the one that commits second fails
    certification (1213 at COMMIT, nothing of it applied); run_transaction runs the whole
    unit of work again, so both increments count. Plain PyMySQL loses its increment."""
    other = _plain(galera, 1)
    attempts = [0]

    def increment(conn: Any) -> None:
        attempts[0] += 1
        with conn.cursor() as cur:
            cur.execute("SELECT n FROM app.counter WHERE id = 1")
            n = cur.fetchone()[0]
            cur.execute("UPDATE app.counter SET n = %s WHERE id = 1", (n + 1,))
        if attempts[0] == 1:
            with other.cursor() as cur:  # node 1 commits first, on the same row
                cur.execute("UPDATE app.counter SET n = n + 1 WHERE id = 1")

    conn = _connect(galera, 0, 1, 2, autocommit=False)
    run_transaction(conn, increment)
    assert attempts[0] == 2
    with contextlib.closing(galera.admin(2)) as admin, admin.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute("SELECT n FROM app.counter WHERE id = 1")
        assert cur.fetchone()[0] == 2
    conn.close()

    # The same race through plain PyMySQL: the COMMIT fails, the increment is gone.
    plain = _plain(galera, 0, autocommit=False)
    with plain.cursor() as cur:
        cur.execute("SELECT n FROM app.counter WHERE id = 1")
        n = cur.fetchone()[0]
        cur.execute("UPDATE app.counter SET n = %s WHERE id = 1", (n + 1,))
    with other.cursor() as cur:
        cur.execute("UPDATE app.counter SET n = n + 1 WHERE id = 1")
    with pytest.raises(pymysql.err.OperationalError) as conflict:
        plain.commit()
    assert conflict.value.args[0] == 1213
    plain.close()
    other.close()
    with contextlib.closing(galera.admin(0)) as admin, admin.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute("SELECT n FROM app.counter WHERE id = 1")
        assert cur.fetchone()[0] == 3  # 4 increments were asked for


def test_aiomysql_moves_off_a_node_that_left(galera: GaleraCluster) -> None:
    async def main() -> None:
        conn = await aio.connect(
            aiomysql.connect,
            hosts=_hosts(galera, 2, 0, 1),
            policies=QUICK,
            user=galera.user,
            password=galera.password,
            db=galera.database,
            autocommit=True,
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT @@port")
                assert (await cur.fetchone())[0] == galera.nodes[2].port
            await asyncio.to_thread(galera.isolate, 2)
            async with conn.cursor() as cur:
                await cur.execute("INSERT INTO app.t (uid) VALUES ('a1')")
                await cur.execute("SELECT @@port")
                assert (await cur.fetchone())[0] == galera.nodes[0].port
        finally:
            conn.close()

    asyncio.run(main())
    galera.rejoin(2)
    assert _uids(galera, 2) == ["a1"]


def test_drill_isolate_kill_and_freeze_the_writers_node(galera: GaleraCluster) -> None:
    """Writers and a reader through one ``creator()`` over the three nodes, while the node
    most of them are on is cut off, then crashed, then frozen (SIGSTOP), each brought back
    after. Every write acknowledged is stored once on every node and nothing else is;
    after each fault every writer writes again; no read fails."""
    creator = resilient_dbapi.creator(
        pymysql.connect,
        hosts=galera.hosts(),
        policies="galera",
        **galera.app_kwargs(autocommit=True, read_timeout=2, connect_timeout=2),
    )
    drill = galera_drill(galera, creator, writers=3, writes=20)
    assert drill.check.ok, drill.check
    assert drill.same_on_every_node
    assert drill.check.stored >= 4 * 3 * 20
    assert [phase.fault for phase in drill.phases] == ["isolate", "kill", "pause"]
    assert drill.reads > 0 and drill.failed_reads == 0, drill


def test_rejoin_restarts_a_node_that_does_not_come_back_by_itself(galera: GaleraCluster) -> None:
    """The harness: a node that left the group for good (``gmcast.isolate=2`` ends its
    group communication; setting it back to 0 is refused) stays out however long one
    waits, so ``rejoin`` restarts it, and it serves the cluster's rows again."""
    with contextlib.closing(galera.admin(0)) as admin, admin.cursor() as cur:
        cur.execute("INSERT INTO app.t VALUES ('before')")
    galera.nodes[2].set_provider_option("gmcast.isolate=2")
    galera.wait_size(2, on=0)
    with pytest.raises(pymysql.err.MySQLError):
        galera.nodes[2].set_provider_option("gmcast.isolate=0")
    assert galera.nodes[2].state() == (False, 0)
    restarts = galera.restarts
    with contextlib.closing(galera.admin(0)) as admin, admin.cursor() as cur:
        cur.execute("INSERT INTO app.t VALUES ('while out')")
    galera.rejoin(2, restart_after=2.0)
    assert galera.restarts == restarts + 1
    assert galera.nodes[2].state() == (True, 4)
    assert _uids(galera, 2) == ["before", "while out"]
