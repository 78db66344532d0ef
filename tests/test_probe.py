"""The opt-in background probe (``probe=HostProbe(...)`` with ``hosts=``) against two real
MariaDB servers: idle connections leave a host the probe found gone (blackholed, or a
frozen server) before they send anything; without the probe the first write there waits
out its read timeout and its outcome is unknown. The probe's thread lives exactly as long
as the creator's connections."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import HostProbe, OutcomeUnknownError
from resilient_dbapi.testing import FaultProxy, MariaDBServer

APP = {"user": "app", "password": "app-pw", "database": "app", "autocommit": True}
PROBE = HostProbe(interval=0.2, timeout=1.0)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[MariaDBServer, MariaDBServer]]:
    with MariaDBServer() as a, MariaDBServer() as b:
        for server in (a, b):
            with contextlib.closing(server.admin()) as admin, admin.cursor() as cur:
                cur.execute("CREATE DATABASE app")
                cur.execute("CREATE TABLE app.t (uid VARCHAR(64) PRIMARY KEY)")
                cur.execute("CREATE USER app@'%' IDENTIFIED BY 'app-pw'")
                cur.execute("GRANT ALL ON app.* TO app@'%'")
        yield a, b


@pytest.fixture
def servers(pair: tuple[MariaDBServer, MariaDBServer]) -> tuple[MariaDBServer, MariaDBServer]:
    for server in pair:
        with contextlib.closing(server.admin()) as admin, admin.cursor() as cur:
            cur.execute("DELETE FROM app.t")
    return pair


def _port(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT @@port")
        return int(cur.fetchone()[0])


def _insert(conn: Any, uid: str) -> float:
    began = time.monotonic()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO app.t (uid) VALUES (%s)", (uid,))
    return time.monotonic() - began


def _uids(server: MariaDBServer) -> list[str]:
    with contextlib.closing(server.admin()) as admin, admin.cursor() as cur:
        cur.execute("SELECT uid FROM app.t ORDER BY uid")
        return [row[0] for row in cur.fetchall()]


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def test_idle_connections_leave_a_blackholed_host_the_probe_found(
    servers: tuple[MariaDBServer, MariaDBServer],
) -> None:
    a, b = servers
    front = FaultProxy(a.port)
    hosts = [("127.0.0.1", front.port), ("127.0.0.1", b.port)]
    kwargs = {**APP, "read_timeout": 2, "connect_timeout": 2}
    make = resilient_dbapi.creator(pymysql.connect, hosts=hosts, probe=PROBE, **kwargs)
    conns = [make(), make()]
    apart = resilient_dbapi.connect(pymysql.connect, hosts=hosts, **kwargs)  # no probe
    try:
        assert {_port(c) for c in (*conns, apart)} == {a.port}
        front.blackhole()
        front.refuse_new()
        memory = conns[0]._connector.memory
        _wait_for(lambda: memory.generation > 0)  # marked: two probes in a row failed
        for i, conn in enumerate(conns):
            assert _insert(conn, f"w{i}") < 1.0  # left before sending: no read timeout
            assert conn.stats.reconnect_reasons == {"host_marked": 1}
        with pytest.raises(OutcomeUnknownError):
            _insert(apart, "apart")  # found out by itself: its read timeout
        assert _uids(b) == ["w0", "w1"]
    finally:
        for conn in (*conns, apart):
            conn.close()
        front.close()


def test_the_probe_finds_a_frozen_server(servers: tuple[MariaDBServer, MariaDBServer]) -> None:
    """SIGSTOP: connecting still succeeds (the kernel accepts), the greeting never comes."""
    a, b = servers
    hosts = [("127.0.0.1", a.port), ("127.0.0.1", b.port)]
    make = resilient_dbapi.creator(
        pymysql.connect, hosts=hosts, probe=PROBE, **{**APP, "read_timeout": 3}
    )
    conn = make()
    assert a.process is not None
    try:
        assert _port(conn) == a.port
        a.process.send_signal(signal.SIGSTOP)
        memory = conn._connector.memory
        _wait_for(lambda: memory.generation > 0, timeout=8.0)
        assert _insert(conn, "moved") < 2.0
        assert conn.stats.reconnect_reasons == {"host_marked": 1}
        assert _port(conn) == b.port
    finally:
        a.process.send_signal(signal.SIGCONT)
        conn.close()
    assert _uids(b) == ["moved"]


def test_the_probe_runs_only_while_a_connection_is_open(
    servers: tuple[MariaDBServer, MariaDBServer],
) -> None:
    a, b = servers
    hosts = [("127.0.0.1", a.port), ("127.0.0.1", b.port)]
    before = threading.active_count()
    plain = resilient_dbapi.creator(pymysql.connect, hosts=hosts, **APP)()
    assert threading.active_count() == before and plain._connector.memory.prober is None
    plain.close()
    make = resilient_dbapi.creator(pymysql.connect, hosts=hosts, probe=PROBE, **APP)
    first, second = make(), make()
    prober = first._connector.memory.prober
    assert prober is second._connector.memory.prober and prober.running
    first.close()
    first.close()  # twice: let go once
    assert prober.running
    second.close()
    _wait_for(lambda: not prober.running, timeout=3.0)
    third = make()  # a new connection starts it again
    assert prober.running
    del third  # never closed: the garbage collector lets go
    _wait_for(lambda: not prober.running, timeout=3.0)


def test_bad_probe_arguments_name_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"interval must be from 0\.1 to 3600"):
        HostProbe(interval=0)
    with pytest.raises(TypeError, match="timeout must be a number"):
        HostProbe(timeout="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="probe= needs hosts="):
        resilient_dbapi.creator(pymysql.connect, probe=HostProbe(), **APP)
    with pytest.raises(TypeError, match=r"probe must be a resilient_dbapi\.HostProbe"):
        resilient_dbapi.creator(pymysql.connect, hosts="a:1,b:2", probe=1.0, **APP)


def test_an_asyncio_creator_is_probed_with_its_own_driver(
    servers: tuple[MariaDBServer, MariaDBServer],
) -> None:
    import asyncio

    import aiomysql

    a, b = servers
    kwargs = {**APP, "db": APP["database"]}
    del kwargs["database"]

    async def main() -> None:
        make = resilient_dbapi.aio.creator(
            aiomysql.connect,
            hosts=[("127.0.0.1", a.port), ("127.0.0.1", b.port)],
            probe=PROBE,
            **kwargs,
        )
        conn = await make()
        try:
            prober = conn._connector.memory.prober
            await asyncio.to_thread(_wait_for, lambda: prober.probes >= 4)
            memory = conn._connector.memory
            # Both servers answered every probe: nothing marked.
            assert memory.generation == 0
        finally:
            conn.close()
        await asyncio.to_thread(_wait_for, lambda: not prober.running, 3.0)

    asyncio.run(main())


def test_only_a_host_that_did_not_answer_counts_against_it() -> None:
    from resilient_dbapi._probe import _why

    def error(code: int, message: str) -> Exception:
        return pymysql.err.OperationalError(code, message)

    assert _why(error(1045, "Access denied for user 'app'")) is None  # answered: up
    assert _why(error(1040, "Too many connections")) is None
    assert _why(error(2003, "Can't connect ([Errno 111] Connection refused)")) == "unreachable"
    assert _why(RuntimeError("Read timed out.")) is None  # not a driver's error
    assert _why(TimeoutError()) == "silent"  # the deadline of an asyncio driver's probe


def test_an_asyncio_probe_of_a_frozen_server_is_bounded_by_its_own_deadline(
    servers: tuple[MariaDBServer, MariaDBServer],
) -> None:
    """aiomysql bounds no greeting: without the probe's own deadline the probe thread
    would wait for it for ever, and mark nothing."""
    import asyncio
    import gc

    import aiomysql

    a, b = servers
    kwargs = {**APP, "db": APP["database"]}
    del kwargs["database"]
    assert a.process is not None

    async def main() -> None:
        make = resilient_dbapi.aio.creator(
            aiomysql.connect,
            hosts=[("127.0.0.1", a.port), ("127.0.0.1", b.port)],
            probe=PROBE,
            **kwargs,
        )
        conn = await make()
        memory = conn._connector.memory
        try:
            a.process.send_signal(signal.SIGSTOP)
            await asyncio.to_thread(_wait_for, lambda: memory.generation > 0, 10.0)
        finally:
            a.process.send_signal(signal.SIGCONT)
            conn.close()

    asyncio.run(main())
    gc.collect()


def test_a_reopened_connection_keeps_the_probe_going(
    servers: tuple[MariaDBServer, MariaDBServer],
) -> None:
    a, b = servers
    hosts = [("127.0.0.1", a.port), ("127.0.0.1", b.port)]
    conn = resilient_dbapi.creator(pymysql.connect, hosts=hosts, probe=PROBE, **APP)()
    prober = conn._connector.memory.prober
    conn.close()
    _wait_for(lambda: not prober.running, timeout=3.0)
    conn.ping(reconnect=True)  # the driver's way to reopen a closed connection
    assert prober.running and _port(conn) in (a.port, b.port)
    conn.close()
    _wait_for(lambda: not prober.running, timeout=3.0)
