"""TLS: a reconnect uses exactly the TLS settings of the first connect (real MariaDB).

TLS is never downgraded on reconnect (issue 7): TLS sessions stay TLS after KILL, idle
timeout and restart, for PyMySQL, mysqlclient and aiomysql; a connection that requires
TLS fails rather than reconnect in plain text when the server stops offering it. Nor
is it downgraded across a pool (issue 16): once one connection of a creator() or drop-in
pool used TLS, a new one in plain text is refused at once, in one connect attempt.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiomysql
import MySQLdb
import pymysql
import pytest
import sqlalchemy
import sqlalchemy.exc

import resilient_dbapi
from resilient_dbapi import PingOnCheckout, RetryOnError, TLSDowngradeError, aio
from resilient_dbapi import aiomysql as resilient_aiomysql
from resilient_dbapi.events import Retrying
from resilient_dbapi.testing import MariaDBServer

from .certificates import certificates
from .conftest import kill

pytestmark = pytest.mark.server
T = TypeVar("T")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[MariaDBServer, dict[str, Path]]]:
    paths = certificates(tmp_path)
    server = MariaDBServer(
        extra_args=(
            f"--ssl-ca={paths['ca']}",
            f"--ssl-cert={paths['cert']}",
            f"--ssl-key={paths['key']}",
        )
    )
    with server:
        yield server, paths


def _cipher(conn: Any) -> str:
    cur = conn.cursor()
    cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    return str(cur.fetchone()[1])


def test_reconnect_keeps_tls(tls_server: tuple[MariaDBServer, dict[str, Path]]) -> None:
    server, paths = tls_server
    conn = resilient_dbapi.connect(
        pymysql.connect, **server.connect_kwargs(ssl={"ca": str(paths["ca"])})
    )
    assert _cipher(conn)
    first = conn.thread_id()
    kill(server, first)
    time.sleep(0.6)  # past the skip window: the check of the TLS socket finds the kill
    assert _cipher(conn)
    assert conn.thread_id() != first
    assert conn.reconnects == 1
    time.sleep(0.6)  # an idle, healthy TLS connection is not mistaken for a dead one
    assert _cipher(conn)
    assert conn.reconnects == 1


def test_mysqlclient_rollback_on_a_dead_tls_connection_is_acknowledged(
    tls_server: tuple[MariaDBServer, dict[str, Path]],
) -> None:
    """mysqlclient reports a TLS connection the server dropped as 2026 (an SSL error, the
    code of a refused handshake): the transaction went with it, which rollback() says
    by succeeding; the next statement runs on a new TLS connection."""
    server, paths = tls_server
    kwargs = server.connect_kwargs(ssl={"ca": str(paths["ca"])})
    plain = MySQLdb.connect(**kwargs)
    cur = plain.cursor()
    cur.execute("SELECT CONNECTION_ID()")
    kill(server, cur.fetchone()[0])
    with pytest.raises(MySQLdb.OperationalError) as raw_error:
        plain.rollback()  # without resilient_dbapi
    assert raw_error.value.args[0] == 2026
    conn = resilient_dbapi.connect(MySQLdb.connect, **kwargs)
    cur = conn.cursor()
    cur.execute("SELECT CONNECTION_ID()")
    first = cur.fetchone()[0]
    cur.execute("SELECT 1 FROM DUAL FOR UPDATE")  # a transaction with locks is open
    kill(server, first)
    conn.rollback()
    assert _cipher(conn)
    cur = conn.cursor()
    cur.execute("SELECT CONNECTION_ID()")
    assert cur.fetchone()[0] != first
    conn.close()


# -- every driver, every fault ------------------------------------------------------------


def _tls_args(paths: dict[str, Path]) -> tuple[str, ...]:
    return (f"--ssl-ca={paths['ca']}", f"--ssl-cert={paths['cert']}", f"--ssl-key={paths['key']}")


class Client:
    """One resilient connection of some driver, used the same way whatever the driver."""

    def __init__(self, conn: Any, runner: asyncio.Runner | None = None) -> None:
        self.conn = conn
        self.runner = runner

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self.runner is not None
        return self.runner.run(coro)

    def execute(self, sql: str) -> Any:
        if self.runner is None:
            cur = self.conn.cursor()
            cur.execute(sql)
            return cur.fetchall()

        async def go() -> Any:
            cur = await self.conn.cursor()
            await cur.execute(sql)
            return await cur.fetchall()

        return self._run(go())

    def cipher(self) -> str:
        value = self.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0][1]
        return value.decode() if isinstance(value, bytes) else str(value)

    def thread_id(self) -> int:
        return int(self.execute("SELECT CONNECTION_ID()")[0][0])

    @property
    def reconnects(self) -> int:
        return int(self.conn.reconnects)

    def close(self) -> None:
        if self.runner is None:
            self.conn.close()
            return

        async def go() -> None:
            self.conn.close()
            await asyncio.sleep(0.1)  # a TLS transport's shutdown takes a few loop turns

        self._run(go())


def _tls_clients(server: MariaDBServer, ca: str, runner: asyncio.Runner) -> dict[str, Client]:
    """Resilient connections of each driver configured with TLS and verification."""
    policies = [PingOnCheckout(), RetryOnError(attempts=3, deadline=2.0, backoff=0.01)]
    mysqlclient_kwargs = {"host": "127.0.0.1", "port": server.port, "user": "root", "password": ""}
    context = ssl.create_default_context(cafile=ca)  # CERT_REQUIRED, check_hostname

    async def aio_connect() -> Any:
        return await aio.connect(
            aiomysql.connect,
            host="127.0.0.1",
            port=server.port,
            user="root",
            password="",
            ssl=context,
            policies=policies,
        )

    clients = {
        "pymysql ssl={'ca': ...}": Client(
            resilient_dbapi.connect(
                pymysql.connect, **server.connect_kwargs(ssl={"ca": ca}), policies=policies
            )
        ),
        "pymysql ssl_ca=..., ssl_verify_identity=True": Client(
            resilient_dbapi.connect(
                pymysql.connect,
                **server.connect_kwargs(ssl_ca=ca, ssl_verify_identity=True),
                policies=policies,
            )
        ),
        "mysqlclient ssl_mode='VERIFY_CA', ssl={'ca': ...}": Client(
            resilient_dbapi.connect(
                MySQLdb.connect,
                **mysqlclient_kwargs,
                ssl_mode="VERIFY_CA",
                ssl={"ca": ca},
                policies=policies,
            )
        ),
        "mysqlclient ssl={'ca': ...}": Client(
            resilient_dbapi.connect(
                MySQLdb.connect, **mysqlclient_kwargs, ssl={"ca": ca}, policies=policies
            )
        ),
        "aiomysql ssl=<verifying SSLContext>": Client(runner.run(aio_connect()), runner),
    }
    return clients


def _close_all(clients: dict[str, Client]) -> None:
    for client in clients.values():
        client.close()


def test_tls_kept_after_kill_idle_timeout_and_restart(tmp_path: Path) -> None:
    """After each fault, every driver's new session is TLS with the first session's
    cipher (test_reconnect_keeps_tls covers PyMySQL after KILL)."""
    paths = certificates(tmp_path)
    with MariaDBServer(extra_args=_tls_args(paths)) as server, asyncio.Runner() as runner:
        clients = _tls_clients(server, str(paths["ca"]), runner)
        try:
            first = {name: client.cipher() for name, client in clients.items()}
            assert all(first.values()), first
            problems: list[str] = []

            def check(fault: str, reconnects: int) -> None:
                for name, client in clients.items():
                    try:
                        cipher = client.cipher()
                    except Exception as exc:  # reported, not hidden behind the others
                        problems.append(f"{name} after {fault}: {exc!r}")
                        continue
                    if cipher != first[name]:
                        problems.append(f"{name} after {fault}: Ssl_cipher {cipher!r}")
                    if client.reconnects != reconnects:
                        problems.append(f"{name} after {fault}: {client.reconnects} reconnects")

            for client in clients.values():
                kill(server, client.thread_id())
            time.sleep(0.6)  # past the skip window
            check("KILL", 1)
            for client in clients.values():
                client.execute("SET SESSION wait_timeout = 1")
            time.sleep(1.5)
            check("idle timeout", 2)
            server.restart()
            time.sleep(0.6)
            check("restart", 3)
            assert not problems
        finally:
            _close_all(clients)


def test_tls_required_is_not_given_up_when_the_server_stops_offering_it(
    tmp_path: Path,
) -> None:
    """The server comes back without TLS: a connection configured to verify the server's
    certificate must fail (2026), not reconnect in plain text."""
    paths = certificates(tmp_path)
    with MariaDBServer(extra_args=_tls_args(paths)) as server, asyncio.Runner() as runner:
        clients = _tls_clients(server, str(paths["ca"]), runner)
        try:
            assert all(client.cipher() for client in clients.values())
            server.extra_args = ()  # the same data directory, no certificate
            server.restart()
            time.sleep(0.6)
            downgraded = {}
            for name, client in clients.items():
                try:
                    cipher = client.cipher()
                except (pymysql.MySQLError, MySQLdb.MySQLError):
                    continue  # refused: what a required TLS connection must do
                if not cipher:
                    downgraded[name] = f"plain text after {client.reconnects} reconnect(s)"
            assert not downgraded, downgraded
        finally:
            _close_all(clients)


# -- one creator(), one pool: one TLS floor -----------------------------------------------
#
# mysqlclient with ssl={'ca': ...} and no ssl_mode, and aiomysql with an SSLContext, treat
# TLS as optional: when the server stops offering it they connect in plain text, saying
# nothing. Each test shows that with the plain driver's pool, then the same pool over
# resilient_dbapi, where the second connection is refused at once.

MARKER = "SELECT 'sent in plain text'"


def _restart_without_tls(server: MariaDBServer) -> None:
    """The same data directory without a certificate; the general log records every
    statement the server receives from now on."""
    server.extra_args = ("--general-log", "--log-output=TABLE")
    server.restart()


def _logged_statements(server: MariaDBServer) -> list[str]:
    admin = server.admin()
    try:
        cur = admin.cursor()
        cur.execute("SELECT argument FROM mysql.general_log WHERE command_type = 'Query'")
        return [v.decode() if isinstance(v, bytes) else str(v) for (v,) in cur.fetchall()]
    finally:
        admin.close()


def _connections_seen(server: MariaDBServer) -> int:
    """Connection attempts the server has seen, this question's own included."""
    admin = server.admin()
    try:
        cur = admin.cursor()
        cur.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
        return int(cur.fetchone()[1])
    finally:
        admin.close()


def _refused_as_a_downgrade(error: BaseException, driver_error: type[BaseException]) -> None:
    assert isinstance(error, driver_error)  # the driver's own class, and ours
    assert isinstance(error, TLSDowngradeError)
    assert "not encrypted" in str(error) and "refuses it at once" in str(error)


def test_one_creator_shares_the_tls_floor_across_a_sqlalchemy_pool(tmp_path: Path) -> None:
    """Two connections of one SQLAlchemy pool over one creator() (mysqlclient, TLS
    optional): the first used TLS; the server comes back without it; the second is
    refused at once, in one connect attempt, before any statement of the caller."""
    paths = certificates(tmp_path)
    kwargs = {"host": "127.0.0.1", "user": "root", "password": "", "ssl": {"ca": str(paths["ca"])}}
    seen: list[object] = []
    with MariaDBServer(extra_args=_tls_args(paths)) as server:
        kwargs["port"] = server.port
        plain = sqlalchemy.create_engine(
            "mysql+mysqldb://", creator=lambda: MySQLdb.connect(**kwargs)
        )
        ours = sqlalchemy.create_engine(
            "mysql+mysqldb://",
            creator=resilient_dbapi.creator(MySQLdb.connect, listeners=[seen.append], **kwargs),
        )
        cipher = "SHOW SESSION STATUS LIKE 'Ssl_cipher'"
        # Each pool's first connection stays checked out, so the next is a new one; it is
        # invalidated at the end (a rollback on it would meet the restart).
        plain_first, first = plain.connect(), ours.connect()
        try:
            assert plain_first.exec_driver_sql(cipher).one()[1]
            assert first.exec_driver_sql(cipher).one()[1]
            _restart_without_tls(server)

            with plain.connect() as plain_second:  # the plain driver: silently plain text
                assert plain_second.exec_driver_sql(cipher).one()[1] == ""
                plain_second.exec_driver_sql(MARKER)
            assert _logged_statements(server).count(MARKER) == 1

            before = _connections_seen(server)
            del seen[:]
            started = time.monotonic()
            with pytest.raises(sqlalchemy.exc.OperationalError) as caught, ours.connect() as s:
                s.exec_driver_sql(MARKER)
            elapsed = time.monotonic() - started
            attempts = _connections_seen(server) - before - 1
            assert _logged_statements(server).count(MARKER) == 1  # the plain driver's only
        finally:
            plain_first.invalidate()
            first.invalidate()
            plain.dispose()
            ours.dispose()
    _refused_as_a_downgrade(caught.value.orig, MySQLdb.OperationalError)  # type: ignore[arg-type]
    assert attempts == 1
    assert not [event for event in seen if isinstance(event, Retrying)]
    assert elapsed < 3.0  # the default retry deadline is 30 s


def test_the_aiomysql_drop_in_pool_shares_the_tls_floor(tmp_path: Path) -> None:
    """The same with the drop-in ``create_pool()`` (aiomysql with an SSLContext: TLS
    optional), against aiomysql's own pool."""
    paths = certificates(tmp_path)
    context = ssl.create_default_context(cafile=str(paths["ca"]))
    seen: list[object] = []

    async def cipher(conn: Any) -> str:
        async with conn.cursor() as cur:
            await cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            return str((await cur.fetchone())[1])

    async def story(server: MariaDBServer) -> tuple[BaseException, float, int]:
        kwargs = {**server.connect_kwargs(ssl=context), "minsize": 1, "maxsize": 2}
        plain = await aiomysql.create_pool(**kwargs)
        ours = await resilient_aiomysql.create_pool(listeners=[seen.append], **kwargs)
        try:
            async with plain.acquire() as plain_first, ours.acquire() as first:
                assert await cipher(plain_first)
                assert await cipher(first)
                _restart_without_tls(server)

                async with plain.acquire() as plain_second:  # silently plain text
                    assert await cipher(plain_second) == ""
                    async with plain_second.cursor() as cur:
                        await cur.execute(MARKER)
                assert _logged_statements(server).count(MARKER) == 1

                before = _connections_seen(server)
                del seen[:]
                started = time.monotonic()
                with pytest.raises(aiomysql.OperationalError) as caught:
                    async with ours.acquire() as second, second.cursor() as cur:
                        await cur.execute(MARKER)
                elapsed = time.monotonic() - started
                attempts = _connections_seen(server) - before - 1
                assert ours.size == 1  # the refused connection is not the pool's
        finally:
            for pool in (plain, ours):
                pool.close()
                await pool.wait_closed()
        return caught.value, elapsed, attempts

    with MariaDBServer(extra_args=_tls_args(paths)) as server:
        error, elapsed, attempts = asyncio.run(story(server))
        _refused_as_a_downgrade(error, aiomysql.OperationalError)
        assert attempts == 1
        assert not [event for event in seen if isinstance(event, Retrying)]
        assert elapsed < 3.0  # the default retry deadline is 30 s
        assert _logged_statements(server).count(MARKER) == 1  # the plain pool's only


def test_the_asyncio_url_shares_the_tls_floor_across_its_pool(tmp_path: Path) -> None:
    """The same through ``create_async_engine("mysql+resilient_aiomysql://")``: the
    connections of one engine come from one creator, as the drop-in pool's do; against
    SQLAlchemy's own ``mysql+aiomysql``, which goes on in plain text."""
    from sqlalchemy.ext.asyncio import create_async_engine

    paths = certificates(tmp_path)
    context = ssl.create_default_context(cafile=str(paths["ca"]))
    cipher = "SHOW SESSION STATUS LIKE 'Ssl_cipher'"

    async def story(server: MariaDBServer) -> tuple[BaseException, int]:
        where = f"root@127.0.0.1:{server.port}/"
        plain = create_async_engine(f"mysql+aiomysql://{where}", connect_args={"ssl": context})
        ours = create_async_engine(
            f"mysql+resilient_aiomysql://{where}", connect_args={"ssl": context}
        )
        plain_first, first = await plain.connect(), await ours.connect()
        try:
            assert (await plain_first.exec_driver_sql(cipher)).one()[1]
            assert (await first.exec_driver_sql(cipher)).one()[1]
            _restart_without_tls(server)

            async with plain.connect() as plain_second:  # silently plain text
                assert (await plain_second.exec_driver_sql(cipher)).one()[1] == ""
                await plain_second.exec_driver_sql(MARKER)
            assert _logged_statements(server).count(MARKER) == 1

            before = _connections_seen(server)
            with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
                async with ours.connect() as second:
                    await second.exec_driver_sql(MARKER)
            attempts = _connections_seen(server) - before - 1
        finally:
            await plain_first.invalidate()
            await first.invalidate()
            await plain.dispose()
            await ours.dispose()
        return caught.value.orig, attempts  # type: ignore[return-value]

    with MariaDBServer(extra_args=_tls_args(paths)) as server:
        error, attempts = asyncio.run(story(server))
        _refused_as_a_downgrade(error, aiomysql.OperationalError)
        assert attempts == 1
        assert _logged_statements(server).count(MARKER) == 1  # the plain engine's only


def test_a_reconnect_refused_for_plain_text_is_not_retried(tmp_path: Path) -> None:
    """One logical connection (mysqlclient, TLS optional) whose server comes back without
    TLS: the reconnect is refused after one attempt, not retried until the policy's
    deadline; each later statement tries once more, and is refused the same way."""
    paths = certificates(tmp_path)
    seen: list[object] = []
    with MariaDBServer(extra_args=_tls_args(paths)) as server:
        conn = resilient_dbapi.connect(
            MySQLdb.connect,
            host="127.0.0.1",
            port=server.port,
            user="root",
            password="",
            ssl={"ca": str(paths["ca"])},
            listeners=[seen.append],
        )
        try:
            client = Client(conn)
            assert client.cipher()
            _restart_without_tls(server)
            time.sleep(0.6)  # past the skip window: the socket check finds the restart
            for _ in range(2):
                before = _connections_seen(server)
                started = time.monotonic()
                with pytest.raises(MySQLdb.OperationalError) as caught:
                    client.execute(MARKER)
                elapsed = time.monotonic() - started
                assert _connections_seen(server) - before - 1 == 1
                _refused_as_a_downgrade(caught.value, MySQLdb.OperationalError)
                assert elapsed < 3.0  # the default retry deadline is 30 s
            assert not [event for event in seen if isinstance(event, Retrying)]
            assert MARKER not in _logged_statements(server)
        finally:
            conn.close()
