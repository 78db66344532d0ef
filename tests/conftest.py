"""Fixtures: a real MariaDB for the integration tests.

The servers come from resilient_dbapi's own pytest plugin
(``resilient_dbapi.testing.pytest_plugin``), as an application's tests would get them.
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
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from resilient_dbapi.testing import FaultProxy, MariaDBServer, PostgresServer, kill_connection

from .drivers import DRIVERS, Driver, postgres_database

# The servers and the fault proxy are the plugin's fixtures, under the names these tests
# have always used: the project's tests use what it offers an application's tests.
pytest_plugins = ["resilient_dbapi.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def server(mariadb_server: Any) -> Any:
    return mariadb_server


@pytest.fixture
def own_server(mariadb_server_own: MariaDBServer) -> MariaDBServer:
    """A server for this test alone, free to be killed or restarted."""
    return mariadb_server_own


@pytest.fixture(scope="session")
def pg_server(postgres_server: PostgresServer) -> PostgresServer:
    return postgres_server


@pytest.fixture
def own_pg_server(postgres_server_own: PostgresServer) -> PostgresServer:
    """A PostgreSQL for this test alone, free to be killed or restarted."""
    return postgres_server_own


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
def proxy(fault_proxy: FaultProxy) -> FaultProxy:
    """A fault-injecting TCP proxy in front of the shared server."""
    return fault_proxy


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
    conn = pymysql.connect(**{**kwargs, "autocommit": True, "ssl_disabled": True})
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
