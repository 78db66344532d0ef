"""Several hosts against two real MariaDB servers (not replicated: each test sets their
roles with ``read_only``): choosing a host, passing over the unsuitable ones, and moving
on when the server turns read-only under a connection. ``test_replication.py`` kills a
real replicated primary."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiomysql
import psycopg
import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import (
    NoSuitableHostError,
    OutcomeUnknownError,
    RetryOnError,
    TransactionLostError,
    aio,
    run_transaction,
)
from resilient_dbapi.events import Event, HostPassedOver
from resilient_dbapi.testing import (
    FaultProxy,
    MariaDBServer,
    ReplicatedPair,
    failover_drill,
    free_port,
)

APP = {"user": "app", "password": "app-pw", "database": "app", "autocommit": True}
QUICK = [RetryOnError(attempts=3, backoff=0.01, max_backoff=0.02)]


class Servers:
    def __init__(self, a: MariaDBServer, b: MariaDBServer) -> None:
        self.a, self.b = a, b

    def host(self, server: MariaDBServer) -> tuple[str, int]:
        return ("127.0.0.1", server.port)

    @property
    def hosts(self) -> list[tuple[str, int]]:
        return [self.host(self.a), self.host(self.b)]

    def read_only(self, server: MariaDBServer, on: bool) -> None:
        admin = server.admin()
        with admin.cursor() as cur:
            cur.execute(f"SET GLOBAL read_only = {int(on)}")
        admin.close()

    def uids(self, server: MariaDBServer) -> list[str]:
        admin = server.admin()
        with admin.cursor() as cur:
            cur.execute("SELECT uid FROM app.t ORDER BY uid")
            found = [row[0] for row in cur.fetchall()]
        admin.close()
        return found


@pytest.fixture(scope="module")
def two_servers() -> Iterator[tuple[MariaDBServer, MariaDBServer]]:
    with MariaDBServer() as a, MariaDBServer() as b:
        for server in (a, b):
            admin = server.admin()
            with admin.cursor() as cur:
                cur.execute("CREATE DATABASE app")
                cur.execute("CREATE TABLE app.t (uid VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB")
                # Not SUPER, so read_only binds it, as it binds an application.
                cur.execute("CREATE USER app@'%' IDENTIFIED BY 'app-pw'")
                cur.execute("GRANT ALL ON app.* TO app@'%'")
            admin.close()
        yield a, b


@pytest.fixture
def servers(two_servers: tuple[MariaDBServer, MariaDBServer]) -> Servers:
    s = Servers(*two_servers)
    for server in two_servers:
        s.read_only(server, False)
        admin = server.admin()
        with admin.cursor() as cur:
            cur.execute("DELETE FROM app.t")
        admin.close()
    return s


def _port(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT @@port")
        return int(cur.fetchone()[0])


def _insert(conn: Any, uid: str) -> None:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO app.t (uid) VALUES (%s)", (uid,))


def test_an_unreachable_host_is_passed_over(servers: Servers) -> None:
    events: list[Event] = []
    nobody = ("127.0.0.1", free_port())
    conn = resilient_dbapi.connect(
        pymysql.connect, hosts=[nobody, servers.host(servers.a)], listeners=[events.append], **APP
    )
    assert _port(conn) == servers.a.port
    passed = [e for e in events if isinstance(e, HostPassedOver)]
    assert [(e.where, e.why, e.code) for e in passed] == [
        (f"127.0.0.1:{nobody[1]}", "unreachable", 2003)
    ]
    assert conn.stats.hosts_passed_over == 1
    conn.close()


def test_the_primary_target_skips_a_read_only_host(servers: Servers) -> None:
    servers.read_only(servers.a, True)
    conn = resilient_dbapi.connect(pymysql.connect, hosts=servers.hosts, **APP)
    assert _port(conn) == servers.b.port
    _insert(conn, "x")
    assert servers.uids(servers.b) == ["x"]
    conn.close()


@pytest.mark.parametrize(("target", "lands_on"), [("replica", "b"), ("any", "a")])
def test_the_replica_and_any_targets(servers: Servers, target: str, lands_on: str) -> None:
    servers.read_only(servers.b, True)
    spec = f"127.0.0.1:{servers.a.port},127.0.0.1:{servers.b.port}"  # the comma form
    conn = resilient_dbapi.connect(pymysql.connect, hosts=spec, target=target, **APP)
    assert _port(conn) == getattr(servers, lands_on).port
    conn.close()


def test_no_suitable_host_names_what_each_did(servers: Servers) -> None:
    servers.read_only(servers.a, True)
    servers.read_only(servers.b, True)
    nobody = ("127.0.0.1", free_port())
    with pytest.raises(NoSuitableHostError) as caught:
        resilient_dbapi.connect(
            pymysql.connect, hosts=[*servers.hosts, nobody], policies=QUICK, **APP
        )
    error = caught.value
    assert isinstance(error, pymysql.err.OperationalError)
    message = str(error)
    assert f"127.0.0.1:{servers.a.port} read-only" in message
    assert f"127.0.0.1:{servers.b.port} read-only" in message
    assert f"127.0.0.1:{nobody[1]} unreachable (2003)" in message
    assert "after 3 round(s)" in message
    assert "app-pw" not in message


def test_bad_access_is_raised_at_once(servers: Servers) -> None:
    with pytest.raises(pymysql.err.OperationalError) as caught:
        resilient_dbapi.connect(
            pymysql.connect, hosts=servers.hosts, **{**APP, "password": "wrong"}
        )
    assert caught.value.args[0] == 1045
    assert not isinstance(caught.value, NoSuitableHostError)


def test_bad_arguments_say_what_is_allowed(servers: Servers) -> None:
    with pytest.raises(ValueError, match="hosts= or host=, not both"):
        resilient_dbapi.connect(pymysql.connect, hosts=servers.hosts, host="127.0.0.1", **APP)
    with pytest.raises(ValueError, match="hosts= or unix_socket=, not both"):
        resilient_dbapi.connect(pymysql.connect, hosts=servers.hosts, unix_socket="/s", **APP)
    with pytest.raises(ValueError, match="target= needs hosts="):
        resilient_dbapi.connect(pymysql.connect, target="primary", **APP)
    with pytest.raises(ValueError, match="'primary', 'replica' or 'any'"):
        resilient_dbapi.creator(pymysql.connect, hosts=servers.hosts, target="leader")
    with pytest.raises(TypeError, match="host"):  # the driver's own, at once
        resilient_dbapi.connect(sqlite3.connect, ":memory:", hosts="a:1", target="any")


def test_a_server_turning_read_only_sends_a_refused_write_to_the_other(
    servers: Servers,
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, hosts=servers.hosts, **APP)
    plain = pymysql.connect(host="127.0.0.1", port=servers.a.port, **APP)
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+05:00'")  # journaled: replayed on the next host
    _insert(conn, "before")
    servers.read_only(servers.a, True)  # a switchover: a is demoted, b takes writes
    # Without resilient_dbapi the write is refused.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _insert(plain, "plain")
    assert refused.value.args[0] == 1290
    _insert(conn, "after")  # refused by a, so never applied there: sent to b
    assert servers.uids(servers.a) == ["before"]
    assert servers.uids(servers.b) == ["after"]
    assert conn.stats.reconnect_reasons["read_only"] == 1
    assert _port(conn) == servers.b.port
    with conn.cursor() as cur:
        cur.execute("SELECT @@session.time_zone")
        assert cur.fetchone() == ("+05:00",)
    conn.close()
    plain.close()


def test_a_server_turning_read_only_inside_a_transaction_loses_it_loudly(
    servers: Servers,
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, hosts=servers.hosts, **APP)
    conn.begin()
    _insert(conn, "t1")
    servers.read_only(servers.a, True)
    with pytest.raises(TransactionLostError) as lost:
        _insert(conn, "t2")
    assert isinstance(lost.value, pymysql.err.OperationalError)
    assert lost.value.args[0] == 1290
    assert "turned read-only" in str(lost.value)
    with pytest.raises(TransactionLostError):  # the rest cannot commit on its own
        conn.commit()
    conn.rollback()
    assert servers.uids(servers.a) == [] and servers.uids(servers.b) == []

    def unit(c: Any) -> None:
        _insert(c, "t1")
        _insert(c, "t2")

    run_transaction(conn, unit)  # the whole unit again, on the writable host
    assert servers.uids(servers.b) == ["t1", "t2"]
    assert servers.uids(servers.a) == []
    conn.close()


def test_a_commit_refused_by_a_server_turned_read_only(servers: Servers) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, hosts=servers.hosts, **APP)
    conn.begin()
    _insert(conn, "c1")
    servers.read_only(servers.a, True)
    with pytest.raises(TransactionLostError):
        conn.commit()
    conn.rollback()
    assert servers.uids(servers.a) == []
    _insert(conn, "c2")
    assert servers.uids(servers.b) == ["c2"]
    conn.close()


def _read_only_soon(servers: Servers, server: MariaDBServer, after: float) -> threading.Thread:
    def later() -> None:
        time.sleep(after)
        servers.read_only(server, True)

    thread = threading.Thread(target=later)
    thread.start()
    return thread


def test_a_procedure_refused_part_way_is_never_sent_again(servers: Servers) -> None:
    admin = servers.a.admin()
    with admin.cursor() as cur:  # run as the app user: its writes are refused too
        cur.execute(
            "CREATE PROCEDURE app.two() SQL SECURITY INVOKER BEGIN "
            "INSERT INTO app.t VALUES ('first'); DO SLEEP(0.6); "
            "INSERT INTO app.t VALUES ('second'); END"
        )
    try:
        conn = resilient_dbapi.connect(pymysql.connect, hosts=servers.hosts, **APP)
        turning = _read_only_soon(servers, servers.a, 0.2)
        with pytest.raises(OutcomeUnknownError) as unknown, conn.cursor() as cur:
            cur.execute("CALL app.two()")
        turning.join()
        assert isinstance(unknown.value, pymysql.err.OperationalError)
        assert "turned read-only" in str(unknown.value)
        # 'first' was applied before the refusal: sending the CALL again would write it
        # twice (once there, once on b).
        assert servers.uids(servers.a) == ["first"]
        assert servers.uids(servers.b) == []
        _insert(conn, "next")  # the next statement goes to the writable host
        assert servers.uids(servers.b) == ["next"]
        conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP PROCEDURE app.two")
        admin.close()


def test_executemany_refused_part_way_loses_its_transaction_loudly(servers: Servers) -> None:
    conn = resilient_dbapi.connect(
        pymysql.connect, hosts=servers.hosts, **{**APP, "autocommit": False}
    )
    rows = [(f"m{i}",) for i in range(4)]
    turning = _read_only_soon(servers, servers.a, 0.45)
    with pytest.raises(TransactionLostError), conn.cursor() as cur:
        # Not a multi-row VALUES: PyMySQL sends one statement per row, 0.3 s each.
        cur.executemany("INSERT INTO app.t (uid) SELECT %s FROM (SELECT SLEEP(0.3)) AS s", rows)
    turning.join()
    with pytest.raises(TransactionLostError):  # never reports a commit of nothing
        conn.commit()
    conn.rollback()
    assert servers.uids(servers.a) == [] and servers.uids(servers.b) == []
    conn.close()


def test_a_read_only_session_setting_on_postgresql_is_the_callers(pg_server: Any) -> None:
    kwargs = pg_server.connect_kwargs()
    hosts = [(kwargs.pop("host"), kwargs.pop("port"))]
    conn = resilient_dbapi.connect(psycopg.connect, hosts=hosts, autocommit=True, **kwargs)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS failover_ro (a int)")
        cur.execute("SET default_transaction_read_only = on")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as refused:
            cur.execute("INSERT INTO failover_ro VALUES (1)")
    assert not isinstance(refused.value, resilient_dbapi.ResilientError)
    assert conn.reconnects == 0
    with conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = off")
        cur.execute("DROP TABLE failover_ro")
    conn.close()


def test_a_read_only_transaction_of_the_caller_is_not_a_failover(servers: Servers) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, hosts=servers.hosts, **APP)
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION READ ONLY")
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cur.execute("INSERT INTO app.t (uid) VALUES ('ro')")
    assert refused.value.args[0] == 1792
    assert not isinstance(refused.value, resilient_dbapi.ResilientError)
    conn.rollback()
    assert conn.reconnects == 0 and _port(conn) == servers.a.port
    conn.close()


def test_the_connections_of_a_creator_share_what_they_learn(servers: Servers) -> None:
    events: list[Event] = []
    make = resilient_dbapi.creator(
        pymysql.connect,
        hosts=[("127.0.0.1", free_port()), servers.host(servers.a)],
        listeners=[events.append],
        **APP,
    )
    first, second = make(), make()
    assert _port(first) == _port(second) == servers.a.port
    # The first found the dead host; the second tried a first.
    assert [type(e) for e in events].count(HostPassedOver) == 1
    first.close()
    second.close()


def test_the_asyncio_proxy_follows_a_switchover(servers: Servers) -> None:
    async def main() -> None:
        kwargs = {**APP, "db": APP["database"]}
        del kwargs["database"]
        conn = await aio.connect(aiomysql.connect, hosts=servers.hosts, **kwargs)
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO app.t (uid) VALUES ('a1')")
            servers.read_only(servers.a, True)
            await cur.execute("INSERT INTO app.t (uid) VALUES ('a2')")
            await cur.execute("SELECT @@port")
            assert (await cur.fetchone())[0] == servers.b.port
        conn.close()

    asyncio.run(main())
    assert servers.uids(servers.a) == ["a1"]
    assert servers.uids(servers.b) == ["a2"]


def test_psycopg_reads_the_role_of_a_postgresql_server(pg_server: Any) -> None:
    kwargs = pg_server.connect_kwargs()
    hosts = [(kwargs.pop("host"), kwargs.pop("port"))]
    conn = resilient_dbapi.connect(psycopg.connect, hosts=hosts, **kwargs)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()
    with pytest.raises(NoSuitableHostError) as caught:
        resilient_dbapi.connect(
            psycopg.connect, hosts=hosts, target="replica", policies=QUICK, **kwargs
        )
    assert isinstance(caught.value, psycopg.OperationalError)
    assert "writable" in str(caught.value)


# -- a real failover: a replicated primary killed, the replica promoted -----------------


@pytest.fixture
def pair(replicated_pair: ReplicatedPair) -> ReplicatedPair:
    return replicated_pair  # the plugin's


def test_writes_resume_on_the_promoted_replica_with_none_lost_or_doubled(
    pair: ReplicatedPair,
) -> None:
    make = resilient_dbapi.creator(
        pymysql.connect, hosts=pair.hosts(), **pair.app_kwargs(autocommit=True)
    )
    drill = failover_drill(pair, make, writers=4, before=100, after=30)
    assert drill.check.ok, drill.check
    assert drill.acknowledged_after >= 4 * 30
    assert drill.check.stored >= 100 + 4 * 30
    # What the writers saw at the kill: each write in flight is reported, none silently.
    assert set(drill.errors) <= {"OutcomeUnknownError", "TransactionLostError"}, drill.errors
    # A writer may get in between SET GLOBAL read_only = 0 and promote() returning.
    assert -1 < drill.first_write <= drill.all_writers < 10


def test_the_same_failover_breaks_the_plain_driver(pair: ReplicatedPair) -> None:
    host, port = pair.hosts()[0]
    plain = pymysql.connect(host=host, port=port, **pair.app_kwargs(autocommit=True))
    with plain.cursor() as cur:
        cur.execute("CREATE TABLE t (uid VARCHAR(64) PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES ('before')")
    pair.wait_caught_up()
    pair.kill_primary()
    pair.promote()
    with pytest.raises(pymysql.err.OperationalError) as lost, plain.cursor() as cur:
        cur.execute("INSERT INTO t VALUES ('after')")
    assert lost.value.args[0] in (2006, 2013)
    with pytest.raises(pymysql.err.OperationalError) as refused:  # reconnecting: dead host
        pymysql.connect(host=host, port=port, **pair.app_kwargs())
    assert refused.value.args[0] == 2003


def test_a_transaction_open_at_the_kill_is_lost_loudly_and_runs_again(
    pair: ReplicatedPair,
) -> None:
    conn = resilient_dbapi.connect(
        pymysql.connect, hosts=pair.hosts(), **pair.app_kwargs(autocommit=True)
    )
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (uid VARCHAR(64) PRIMARY KEY)")
    pair.wait_caught_up()
    conn.begin()
    _insert(conn, "t1")
    pair.kill_primary()
    pair.promote()
    with pytest.raises(TransactionLostError):
        _insert(conn, "t2")
    conn.rollback()

    def unit(c: Any) -> None:
        _insert(c, "t1")
        _insert(c, "t2")

    run_transaction(conn, unit)
    with conn.cursor() as cur:
        cur.execute("SELECT uid, @@port FROM t ORDER BY uid")
        assert cur.fetchall() == (("t1", pair.replica.port), ("t2", pair.replica.port))
    conn.close()


def test_the_asyncio_proxy_rides_through_a_failover(pair: ReplicatedPair) -> None:
    kwargs = pair.app_kwargs(autocommit=True)
    kwargs["db"] = kwargs.pop("database")

    async def main() -> list[Any]:
        conn = await aio.connect(aiomysql.connect, hosts=pair.hosts(), **kwargs)
        async with conn.cursor() as cur:
            await cur.execute("CREATE TABLE t (uid VARCHAR(64) PRIMARY KEY)")
            await cur.execute("INSERT INTO t VALUES ('before')")
        await asyncio.to_thread(pair.wait_caught_up)
        await asyncio.to_thread(pair.kill_primary)
        await asyncio.to_thread(pair.promote)
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO t VALUES ('after')")  # not sent before: safe
            await cur.execute("SELECT uid, @@port FROM t ORDER BY uid")
            found = list(await cur.fetchall())
        conn.close()
        return found

    assert asyncio.run(main()) == [("after", pair.replica.port), ("before", pair.replica.port)]


# -- the health view: one connection's discovery, every connection's move ---------------


def test_a_demoted_host_is_left_by_every_connection_of_the_creator_before_it_writes(
    servers: Servers,
) -> None:
    make = resilient_dbapi.creator(pymysql.connect, hosts=servers.hosts, **APP)
    conns = [make() for _ in range(3)]
    # Side by side: a connection of another connect() on the same hosts shares nothing.
    apart = resilient_dbapi.connect(pymysql.connect, hosts=servers.hosts, **APP)
    try:
        assert {_port(c) for c in (*conns, apart)} == {servers.a.port}
        servers.read_only(servers.a, True)
        _insert(conns[0], "first")  # refused by a (1290), never applied: sent to b
        assert conns[0].stats.reconnect_reasons == {"read_only": 1}
        for i, conn in enumerate(conns[1:]):
            _insert(conn, f"next{i}")
            # Replaced before the write was sent: never refused by the demoted host.
            assert conn.stats.reconnect_reasons == {"host_marked": 1}
            assert _port(conn) == servers.b.port
        _insert(apart, "apart")
        assert apart.stats.reconnect_reasons == {"read_only": 1}  # it had to be refused
        assert servers.uids(servers.a) == []
        assert servers.uids(servers.b) == ["apart", "first", "next0", "next1"]
    finally:
        for conn in (*conns, apart):
            conn.close()


@pytest.mark.parametrize("driver", ["pymysql", "mysql-connector"])
def test_a_host_found_unreachable_is_left_before_anything_is_sent(
    servers: Servers, driver: str
) -> None:
    """The host's open sockets look alive (blackholed: no reset ever comes) while new
    connections to it are refused: one connection that finds it unreachable spares the
    others a statement, a rollback, or a cursor (mysql-connector pings for one) that
    would hang until their read timeout."""
    if driver == "pymysql":
        connect: Any = pymysql.connect
        kwargs: dict[str, Any] = {**APP, "read_timeout": 5}
    else:
        import mysql.connector

        connect = mysql.connector.connect
        kwargs = {**APP, "use_pure": True, "connection_timeout": 5}
    front = FaultProxy(servers.a.port)
    hosts = [("127.0.0.1", front.port), servers.host(servers.b)]
    make = resilient_dbapi.creator(connect, hosts=hosts, **kwargs)
    conns = [make(), make()]
    # Side by side (PyMySQL: mysql-connector has no read timeout to end the hang): a
    # connection of another connect() on the same hosts.
    apart = resilient_dbapi.connect(connect, hosts=hosts, **kwargs) if driver == "pymysql" else None
    try:
        assert {_port(c) for c in conns} == {servers.a.port}
        front.blackhole()
        front.refuse_new()  # new connections are refused, the open ones hang
        newcomer = make()  # finds a unreachable, lands on b
        assert _port(newcomer) == servers.b.port
        newcomer.close()
        conns[0].rollback()  # nothing to end: not sent to the marked host
        conns[0].commit()
        for i, conn in enumerate(conns):
            cur = conn.cursor()
            cur.execute("INSERT INTO app.t (uid) VALUES (%s)", (f"w{i}",))
            cur.close()
            assert conn.stats.reconnect_reasons == {"host_marked": 1}
        if apart is not None:
            # Without the shared view: the read timeout, then a write of unknown outcome.
            with pytest.raises(OutcomeUnknownError):
                _insert(apart, "apart")
        assert servers.uids(servers.a) == []
        assert servers.uids(servers.b) == ["w0", "w1"]
    finally:
        for conn in conns if apart is None else (*conns, apart):
            conn.close()
        front.close()


def test_asyncio_connections_of_a_creator_leave_a_demoted_host(servers: Servers) -> None:
    kwargs = {**APP, "db": APP["database"]}
    del kwargs["database"]

    async def write(conn: Any, uid: str) -> int:
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO app.t (uid) VALUES (%s)", (uid,))
            await cur.execute("SELECT @@port")
            return int((await cur.fetchone())[0])

    async def main() -> None:
        make = aio.creator(aiomysql.connect, hosts=servers.hosts, **kwargs)
        first, second = await make(), await make()
        try:
            servers.read_only(servers.a, True)
            assert await write(first, "first") == servers.b.port
            assert await write(second, "second") == servers.b.port
            assert first.stats.reconnect_reasons == {"read_only": 1}
            assert second.stats.reconnect_reasons == {"host_marked": 1}
        finally:
            first.close()
            second.close()

    asyncio.run(main())
    assert servers.uids(servers.b) == ["first", "second"]


def test_a_host_silent_past_the_read_timeout_is_left_by_the_others(servers: Servers) -> None:
    """A statement that hears nothing within the read timeout (a frozen or blackholed
    server) marks its host: the other connections of the creator leave it before sending,
    instead of each waiting out its own timeout and failing."""
    front = FaultProxy(servers.a.port)
    hosts = [("127.0.0.1", front.port), servers.host(servers.b)]
    events: list[Event] = []
    kwargs = {**APP, "read_timeout": 1, "listeners": [events.append]}
    make = resilient_dbapi.creator(pymysql.connect, hosts=hosts, **kwargs)
    first, second = make(), make()
    apart = resilient_dbapi.connect(pymysql.connect, hosts=hosts, **{**APP, "read_timeout": 1})
    try:
        assert {_port(c) for c in (first, second, apart)} == {servers.a.port}
        front.blackhole()
        with pytest.raises(OutcomeUnknownError):
            _insert(first, "unknown")
        began = time.monotonic()
        _insert(second, "moved")  # left a before sending: no read timeout
        assert time.monotonic() - began < 0.9
        assert second.stats.reconnect_reasons == {"host_marked": 1}
        silent = [e for e in events if isinstance(e, HostPassedOver) and e.why == "silent"]
        assert [e.where for e in silent] == [f"127.0.0.1:{front.port}"]
        # Side by side, a connection of another connect(): its own timeout, and a write
        # of unknown outcome.
        with pytest.raises(OutcomeUnknownError):
            _insert(apart, "apart")
        assert servers.uids(servers.b) == ["moved"]
    finally:
        for conn in (first, second, apart):
            conn.close()
        front.close()
