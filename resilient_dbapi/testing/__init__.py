"""Throwaway local database servers and fault injection, for the test suite and the
benchmarks.

``MariaDBServer()`` initialises a temporary data directory and runs Debian's ``mariadbd``
on a free loopback port; it starts in about a second and is removed on ``remove()``.
``PostgresServer()`` does the same with Debian's PostgreSQL (``initdb`` and ``postgres``,
run as the ``postgres`` user when we are root). For failover tests, ``ReplicatedPair()``
runs two MariaDB servers as a primary and its replica, ``StandbyPair()`` a PostgreSQL
primary and its synchronous streaming standby, ``GaleraCluster()`` three MariaDB nodes as
a Galera cluster (Debian's ``galera-4``), ``ProxiedPair()`` two behind HAProxy.
``FaultProxy`` relays a loopback TCP connection and injects network faults into it;
``ServerFaults`` kills, times out or restarts the sessions of a database. Nothing here is
needed to use resilient_dbapi itself, and the runtime package never imports it.

The modules, by concern: ``servers`` (the launchers), ``replication`` (the replicated pair
and its failover drill), ``pg_replication`` (the PostgreSQL pair), ``galera`` (the
cluster and its drill), ``haproxy`` (the proxied pair and its drill), ``faults``
(``FaultProxy``, ``ServerFaults``, ``kill_connection``), ``ledger`` (``WriteLedger``,
``LedgerCheck``) and ``pytest_plugin`` (all of these as pytest fixtures: enable it with
``pytest_plugins = ["resilient_dbapi.testing.pytest_plugin"]`` in a conftest.py).
"""

from __future__ import annotations

from .faults import FaultProxy, ServerFaults, kill_connection
from .galera import GaleraCluster, GaleraDrill, find_galera, galera_drill
from .ledger import LedgerCheck, WriteLedger
from .pg_replication import StandbyPair
from .replication import FailoverDrill, ReplicatedPair, failover_drill
from .servers import (
    ExistingServer,
    MariaDBServer,
    PostgresServer,
    ServerUnavailable,
    find_mariadbd,
    find_postgres,
    free_port,
)

__all__ = [
    "ExistingServer",
    "FailoverDrill",
    "FaultProxy",
    "GaleraCluster",
    "GaleraDrill",
    "LedgerCheck",
    "MariaDBServer",
    "PostgresServer",
    "ReplicatedPair",
    "ServerFaults",
    "ServerUnavailable",
    "StandbyPair",
    "WriteLedger",
    "failover_drill",
    "find_galera",
    "find_mariadbd",
    "find_postgres",
    "free_port",
    "galera_drill",
    "kill_connection",
]
