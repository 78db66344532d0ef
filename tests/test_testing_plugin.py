"""The pytest plugin's fixtures (``resilient_dbapi.testing.pytest_plugin``, enabled by this
suite's conftest.py), used as an application's tests would use them: each fault ends the
sessions it should and no other, a resilient connection goes on, and plain PyMySQL
breaks the same way an application would."""

from __future__ import annotations

import time
from typing import Any

import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi.testing import ExistingServer, ServerFaults, ServerUnavailable

pytestmark = pytest.mark.server


def _plain(kwargs: dict[str, Any]) -> Any:
    return pymysql.connect(**kwargs, autocommit=True)


def _resilient(kwargs: dict[str, Any]) -> Any:
    return resilient_dbapi.connect(pymysql.connect, **kwargs, autocommit=True)


def _select(conn: Any) -> Any:
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchall()


def test_kill_connections_ends_the_databases_sessions_only(
    mariadb: dict[str, Any], db_faults: ServerFaults, mariadb_server: Any
) -> None:
    plain, resilient = _plain(mariadb), _resilient(mariadb)
    elsewhere = pymysql.connect(**mariadb_server.connect_kwargs(), autocommit=True)
    assert len(db_faults.sessions()) == 2  # the test's admin and other databases left out
    assert db_faults.kill_connections() == 2
    with pytest.raises(pymysql.err.OperationalError) as info:
        _select(plain)
    assert info.value.args[0] in (2006, 2013)
    assert _select(resilient) == ((1,),)  # a new session, on the same database
    assert _select(elsewhere) == ((1,),)  # another database's session untouched
    assert len(db_faults.sessions()) == 1
    for conn in (resilient, elsewhere):
        conn.close()


def test_time_out_idle_ends_only_the_sessions_idle_that_long(
    mariadb: dict[str, Any], db_faults: ServerFaults
) -> None:
    idle, busy = _plain(mariadb), _plain(mariadb)
    time.sleep(0.6)
    _select(busy)
    assert db_faults.time_out_idle(0.5) == 1
    _select(busy)
    with pytest.raises(pymysql.err.OperationalError):
        _select(idle)
    busy.close()


def test_wait_timeout_lets_the_server_time_out_what_connects_in_the_block(
    mariadb: dict[str, Any], db_faults: ServerFaults, mariadb_server: Any
) -> None:
    with db_faults.wait_timeout(1):
        plain, resilient = _plain(mariadb), _resilient(mariadb)
        time.sleep(1.6)
        with pytest.raises(pymysql.err.OperationalError):
            _select(plain)
        assert _select(resilient) == ((1,),)
    admin = mariadb_server.admin()
    with admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.wait_timeout")
        assert cur.fetchone()[0] > 1  # the server's own value is back
    admin.close()
    resilient.close()
    with pytest.raises(ValueError, match="whole number of seconds"), db_faults.wait_timeout(0):
        pass


def test_restart_ends_every_session_on_a_server_of_the_tests_own(
    mariadb_server_own: Any,
) -> None:
    kwargs = mariadb_server_own.connect_kwargs()
    plain, resilient = _plain(kwargs), _resilient(kwargs)
    ServerFaults(mariadb_server_own).restart(down_for=0.2)
    with pytest.raises(pymysql.err.OperationalError):
        _select(plain)
    assert _select(resilient) == ((1,),)
    resilient.close()


def test_a_server_named_by_a_dsn_is_never_restarted() -> None:
    server = ExistingServer.from_dsn("mysql://app:s%40cret@db.example:3307")
    assert server.connect_kwargs() == {
        "host": "db.example",
        "port": 3307,
        "user": "app",
        "password": "s@cret",
    }
    with pytest.raises(ServerUnavailable, match="not ours to restart"):
        ServerFaults(server).restart()
    with pytest.raises(ValueError, match="mysql://user:password@host:port"):
        ExistingServer.from_dsn("postgresql://db")
