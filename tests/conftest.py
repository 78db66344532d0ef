"""Fixtures: a real MariaDB for the integration tests.

The shared server is, in order of preference: an existing server named by
``RESILIENT_DBAPI_TEST_DSN`` (``mysql://user:password@host:port``), a throwaway local
``mariadbd`` (Debian's mariadb-server, installed by the test command), or a
testcontainers MySQL container when a Docker engine is reachable. Tests that kill,
restart or reconfigure the server use ``own_server``: a throwaway server of their own.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from resilient_dbapi.testing import (
    FaultProxy,
    MariaDBServer,
    PostgresServer,
    ServerUnavailable,
    kill_connection,
)

from .drivers import DRIVERS, Driver, postgres_database


class ExistingServer:
    """A server someone else runs: connect to it, never restart it."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            **overrides,
        }

    def admin(self, **overrides: Any) -> Any:
        return pymysql.connect(**self.connect_kwargs(autocommit=True, **overrides))


def _from_dsn(dsn: str) -> ExistingServer:
    url = urllib.parse.urlsplit(dsn)
    return ExistingServer(
        url.hostname or "127.0.0.1",
        url.port or 3306,
        urllib.parse.unquote(url.username or "root"),
        urllib.parse.unquote(url.password or ""),
    )


def _docker_server() -> tuple[ExistingServer, Any]:
    from testcontainers.mysql import MySqlContainer  # optional: pip install .[docker]

    container = MySqlContainer("mariadb:10.11", username="root", password="test")
    container.start()
    server = ExistingServer(
        container.get_container_host_ip(), int(container.get_exposed_port(3306)), "root", "test"
    )
    return server, container


@pytest.fixture(scope="session")
def server() -> Iterator[Any]:
    dsn = os.environ.get("RESILIENT_DBAPI_TEST_DSN")
    if dsn:
        yield _from_dsn(dsn)
        return
    try:
        local = MariaDBServer().start()
    except ServerUnavailable as no_local:
        try:
            remote, container = _docker_server()
        except Exception as no_docker:
            raise RuntimeError(
                f"no MariaDB for the tests: {no_local}; and no Docker engine: {no_docker}"
            ) from no_docker
        yield remote
        container.stop()
        return
    yield local
    local.remove()


@pytest.fixture
def own_server() -> Iterator[MariaDBServer]:
    """A server for this test alone, free to be killed or restarted."""
    with MariaDBServer() as server:
        yield server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL (Debian's postgresql, installed by the test command)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def own_pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL for this test alone, free to be killed or restarted."""
    with PostgresServer() as server:
        yield server


_names = itertools.count(1)


@pytest.fixture
def db(server: Any) -> Iterator[dict[str, Any]]:
    """Connect keyword arguments for a fresh database with a table ``t``."""
    name = f"t_{os.getpid()}_{next(_names)}"
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
        cur.execute(
            f"CREATE TABLE {name}.t (id INT AUTO_INCREMENT PRIMARY KEY, "
            "uid VARCHAR(64) NOT NULL, v INT NOT NULL DEFAULT 0) ENGINE=InnoDB"
        )
    yield server.connect_kwargs(database=name)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE {name}")
    admin.close()


@pytest.fixture
def proxy(server: Any) -> Iterator[FaultProxy]:
    """A fault-injecting TCP proxy in front of the shared server."""
    kwargs = server.connect_kwargs()
    fault = FaultProxy(kwargs["port"], kwargs["host"])
    yield fault
    fault.close()


def kill(server: Any, thread_id: int, *, wait: bool = True) -> None:
    """``KILL CONNECTION`` from another session; wait until the server dropped it."""
    admin = server.admin()
    try:
        kill_connection(admin, thread_id, wait=10.0 if wait else 0.0)
    finally:
        admin.close()


@contextlib.contextmanager
def killed_in_flight(server: Any, thread_id: int, *, after: float = 0.3) -> Iterator[None]:
    """``KILL CONNECTION`` from another thread ``after`` seconds into the block: a
    statement that takes longer (``SLEEP_WRITE``) is killed after it reached the server."""
    timer = threading.Timer(after, kill, (server, thread_id))
    timer.start()
    try:
        yield
    finally:
        timer.join()


# A write that is still running on the server when killed_in_flight() kills it.
SLEEP_WRITE = "INSERT INTO t (uid) SELECT IF(SLEEP(1), %s, %s)"


def rows(server: Any, kwargs: dict[str, Any], sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    """Run a read on a separate plain connection (the ground truth)."""
    conn = pymysql.connect(**{**kwargs, "autocommit": True})
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


# -- every driver against its own server (tests/drivers.py) ---------------------------


@pytest.fixture(params=DRIVERS, ids=[d.name for d in DRIVERS])
def driver(request: pytest.FixtureRequest) -> Driver:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def srv(driver: Driver, request: pytest.FixtureRequest) -> Any:
    """The driver's shared server."""
    return request.getfixturevalue(driver.server)


@pytest.fixture
def dbkw(driver: Driver, srv: Any, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The driver's connect keyword arguments for a fresh database with a table ``t``."""
    if driver.server == "server":
        yield driver.translate(request.getfixturevalue("db"))
    else:
        yield from postgres_database(srv)
