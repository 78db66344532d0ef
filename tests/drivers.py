"""The drivers the story suite runs against, each with its own real server.

A :class:`Driver` knows how to connect with the driver (plain or through
resilient_dbapi), how to find and kill its server session, and the SQL its server speaks
for the stories (an idle timeout, a slow write, a slow read).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from resilient_dbapi.testing import kill_connection


@dataclass(frozen=True)
class Driver:
    name: str
    module: str
    server: str  # the fixture with its shared server: "server" or "pg_server"
    own_server: str  # the fixture with a server of the test's own
    connect_name: str
    idle_timeout_sql: str
    slow_write_sql: str
    slow_read_sql: str  # returns one row (42,) after about a second
    session_id_sql: str
    translate: Callable[[dict[str, Any]], dict[str, Any]]
    # Whether the server's word proves a lost transaction rolled back: PostgreSQL's
    # tables all roll back; PyMySQL shows MariaDB's session tracking (no MyISAM write);
    # mysqlclient and mysql-connector show neither, so a lost write is of unknown outcome.
    proves_rollback: bool = True

    @property
    def connect(self) -> Callable[..., Any]:
        module = __import__(self.module, fromlist=["_"])
        return getattr(module, self.connect_name)  # type: ignore[no-any-return]

    @property
    def error(self) -> type[Exception]:
        """The driver's base error class (PEP 249 ``Error``)."""
        return __import__(self.module, fromlist=["_"]).Error  # type: ignore[no-any-return]

    @property
    def operational_error(self) -> type[Exception]:
        return __import__(self.module, fromlist=["_"]).OperationalError  # type: ignore[no-any-return]

    def session_id(self, conn: Any) -> int:
        cur = conn.cursor()
        cur.execute(self.session_id_sql)
        (ident,) = cur.fetchone()
        cur.close()
        return int(ident)

    def kill(self, server: Any, session: int) -> None:
        """End ``session`` from another connection; wait until the server dropped it."""
        if self.server == "server":
            admin = server.admin()
            try:
                kill_connection(admin, session, wait=10.0)
            finally:
                admin.close()
            return
        admin = server.admin()
        try:
            admin.execute("SELECT pg_terminate_backend(%s)", (session,))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = %s", (session,)
                ).fetchone()
                if row[0] == 0:
                    return
                time.sleep(0.01)
        finally:
            admin.close()


def _mysql(kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs


def _connector(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "use_pure": True}


def _same(kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs


_MYSQL_SQL = {
    "idle_timeout_sql": "SET SESSION wait_timeout=1",
    "slow_write_sql": "INSERT INTO t (uid, v) SELECT 'slow', SLEEP(2)",
    "slow_read_sql": "SELECT 42 FROM (SELECT SLEEP(1)) AS s",
    "session_id_sql": "SELECT CONNECTION_ID()",
    "server": "server",
    "own_server": "own_server",
}

DRIVERS = [
    Driver("pymysql", "pymysql", connect_name="connect", translate=_mysql, **_MYSQL_SQL),
    Driver(
        "mysqlclient",
        "MySQLdb",
        connect_name="connect",
        translate=_mysql,
        proves_rollback=False,
        **_MYSQL_SQL,
    ),
    Driver(
        "mysql-connector",
        "mysql.connector",
        connect_name="connect",
        translate=_connector,
        proves_rollback=False,
        **_MYSQL_SQL,
    ),
    Driver(
        "psycopg",
        "psycopg",
        server="pg_server",
        own_server="own_pg_server",
        connect_name="connect",
        idle_timeout_sql="SET idle_session_timeout = '1s'",
        slow_write_sql="INSERT INTO t (uid, v) SELECT 'slow', 1 FROM pg_sleep(2)",
        slow_read_sql="SELECT 42 FROM pg_sleep(1)",
        session_id_sql="SELECT pg_backend_pid()",
        translate=_same,
    ),
]

_names = itertools.count(1)


def postgres_database(server: Any) -> Iterator[dict[str, Any]]:
    """Connect keyword arguments for a fresh PostgreSQL database with a table ``t``."""
    name = f"t_{os.getpid()}_{next(_names)}"
    admin = server.admin()
    admin.execute(f"CREATE DATABASE {name}")
    kwargs = server.connect_kwargs(dbname=name)
    setup = server.admin(dbname=name)
    setup.execute(
        "CREATE TABLE t (id SERIAL PRIMARY KEY, uid VARCHAR(64) NOT NULL, v INT NOT NULL DEFAULT 0)"
    )
    setup.close()
    yield kwargs
    admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()


def count_rows(driver: Driver, kwargs: dict[str, Any]) -> int:
    """Rows in ``t``, read on a separate plain connection (the ground truth)."""
    conn = driver.connect(**kwargs)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM t")
        (count,) = cur.fetchone()
        conn.rollback()
        return int(count)
    finally:
        conn.close()
