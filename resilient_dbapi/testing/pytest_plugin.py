"""A pytest plugin: throwaway database servers, and the faults resilient_dbapi is for, as
fixtures for an application's own tests.

Enable it in a ``conftest.py``::

    pytest_plugins = ["resilient_dbapi.testing.pytest_plugin"]

(or ``pytest -p resilient_dbapi.testing.pytest_plugin``). The fixtures:

- ``mariadb_server`` (session): the server named by ``RESILIENT_DBAPI_TEST_DSN``
  (``mysql://user:password@host:port``, never restarted), else a throwaway ``mariadbd``
  (Debian's mariadb-server) on a free loopback port, else a testcontainers MariaDB where
  a Docker engine is reachable;
- ``mariadb_server_own``: a throwaway server for one test, free to restart or kill;
- ``postgres_server`` (session) and ``postgres_server_own``: the same for PostgreSQL;
- ``mariadb``: connect keyword arguments (``host``, ``port``, ``user``, ``password``,
  ``database``) for a fresh, empty database on ``mariadb_server``, dropped afterwards;
- ``db_faults``: a :class:`~resilient_dbapi.testing.ServerFaults` for that database's
  sessions: ``kill_connections()``, ``time_out_idle()``, ``wait_timeout(s)``,
  ``restart()``;
- ``fault_proxy``: a :class:`~resilient_dbapi.testing.FaultProxy` in front of
  ``mariadb_server`` (connect to ``fault_proxy.port``): ``blackhole()``,
  ``cut_after(marker)``, ``close_all()``;
- ``write_ledger``: a :class:`~resilient_dbapi.testing.WriteLedger`, to check afterwards
  that no acknowledged write was lost and none applied twice;
- the topologies of several hosts, each started for one test: ``replicated_pair`` (a
  MariaDB primary and its replica), ``standby_pair`` (a PostgreSQL primary and its
  streaming standby), ``proxied_pair`` (two MariaDB servers behind HAProxy); and
  ``galera_cluster`` (three Galera nodes), shared by a module's tests (it takes several
  seconds to start: a test that cuts a node off brings it back).

The runtime package never imports this module.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from .faults import FaultProxy, ServerFaults
from .galera import GaleraCluster
from .haproxy import ProxiedPair
from .ledger import WriteLedger
from .pg_replication import StandbyPair
from .replication import ReplicatedPair
from .servers import ExistingServer, MariaDBServer, PostgresServer, ServerUnavailable

__all__ = [
    "db_faults",
    "fault_proxy",
    "galera_cluster",
    "mariadb",
    "mariadb_server",
    "mariadb_server_own",
    "postgres_server",
    "postgres_server_own",
    "proxied_pair",
    "replicated_pair",
    "standby_pair",
    "write_ledger",
]

DSN_VARIABLE = "RESILIENT_DBAPI_TEST_DSN"
_names = itertools.count(1)


def _docker_server() -> tuple[ExistingServer, Any]:
    from testcontainers.mysql import MySqlContainer  # optional: resilient_dbapi[docker]

    container = MySqlContainer("mariadb:10.11", username="root", password="test")
    container.start()
    server = ExistingServer(
        container.get_container_host_ip(), int(container.get_exposed_port(3306)), "root", "test"
    )
    return server, container


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[Any]:
    """The MariaDB server the session's tests share (see the module's docstring)."""
    dsn = os.environ.get(DSN_VARIABLE)
    if dsn:
        yield ExistingServer.from_dsn(dsn)
        return
    try:
        local = MariaDBServer().start()
    except ServerUnavailable as no_local:
        try:
            remote, container = _docker_server()
        except Exception as no_docker:
            raise ServerUnavailable(
                f"no MariaDB for the tests: {no_local}; and no Docker engine: {no_docker} "
                f"(install mariadb-server, or name a server in {DSN_VARIABLE})"
            ) from no_docker
        yield remote
        container.stop()
        return
    yield local
    local.remove()


@pytest.fixture
def mariadb_server_own() -> Iterator[MariaDBServer]:
    """A throwaway MariaDB for this test alone, free to be killed or restarted."""
    with MariaDBServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL (Debian's postgresql) the session's tests share."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_server_own() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL for this test alone, free to be killed or restarted."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def mariadb(mariadb_server: Any) -> Iterator[dict[str, Any]]:
    """Connect keyword arguments for a fresh, empty database on ``mariadb_server``."""
    name = f"test_{os.getpid()}_{next(_names)}"
    admin = mariadb_server.admin()
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        yield mariadb_server.connect_kwargs(database=name)
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        admin.close()


@pytest.fixture
def db_faults(mariadb_server: Any, mariadb: dict[str, Any]) -> ServerFaults:
    """The server's faults, done to the sessions of the ``mariadb`` database."""
    return ServerFaults(mariadb_server, database=mariadb["database"])


@pytest.fixture
def fault_proxy(mariadb_server: Any) -> Iterator[FaultProxy]:
    """A fault-injecting loopback TCP proxy in front of ``mariadb_server``."""
    kwargs = mariadb_server.connect_kwargs()
    with FaultProxy(kwargs["port"], kwargs["host"]) as proxy:
        yield proxy


@pytest.fixture
def write_ledger() -> WriteLedger:
    """A ledger of writes: what the client heard, to check against the table."""
    return WriteLedger()


@pytest.fixture
def replicated_pair() -> Iterator[ReplicatedPair]:
    """A MariaDB primary and its replica (GTID, semi-sync), for one test."""
    with ReplicatedPair() as pair:
        yield pair


@pytest.fixture
def standby_pair() -> Iterator[StandbyPair]:
    """A PostgreSQL primary and its synchronous streaming standby, for one test."""
    with StandbyPair() as pair:
        yield pair


@pytest.fixture
def proxied_pair() -> Iterator[ProxiedPair]:
    """Two MariaDB servers behind HAProxy (the second a backup), for one test."""
    with ProxiedPair() as pair:
        yield pair


@pytest.fixture(scope="module")
def galera_cluster() -> Iterator[GaleraCluster]:
    """A three-node Galera cluster on loopback, shared by the module's tests."""
    with GaleraCluster() as cluster:
        yield cluster
