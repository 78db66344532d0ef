"""Django's MySQL backend on resilient_dbapi's drop-in, through Django's real request cycle,
against a real MariaDB; each failure is also shown happening with plain PyMySQL.

Django is configured once per process and ``MySQLdb`` can be only one module, so each
scenario runs in a subprocess (``tests/django_project/run.py``) that prints its result as
JSON. Requests go through Django's WSGI handler with ``CONN_MAX_AGE = 600``; closing each
response fires ``request_finished``, as under a real server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .conftest import rows
from .drivers import postgres_database

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
MODES = ("resilient", "plain")
DRIVERS = {
    "resilient": "resilient_dbapi.connection.ResilientConnection",
    "plain": "pymysql.connections.Connection",
}


def run_scenario(
    db: dict[str, Any], scenario: str, mode: str, env_extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """The steps of one scenario, run in a fresh Python process on database ``db``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.pop("RESILIENT_DBAPI_POLICY", None)
    env.update(env_extra or {})
    env.update(
        DJANGO_DB_HOST=str(db["host"]),
        DJANGO_DB_PORT=str(db["port"]),
        DJANGO_DB_USER=str(db["user"]),
        DJANGO_DB_PASSWORD=str(db["password"]),
        DJANGO_DB_NAME=str(db["database"]),
    )
    # -W error: the subprocess is held to the same warning policy as the test suite.
    command = [sys.executable, "-W", "error", "-m", "tests.django_project.run", scenario]
    done = subprocess.run(
        [*command, "--mode", mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    steps: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])["steps"]
    return steps


def items(server: Any, db: dict[str, Any]) -> list[str]:
    """The item names committed, read on a separate plain connection."""
    return [name for (name,) in rows(server, db, "SELECT name FROM items_item ORDER BY id")]


def error_class(step: dict[str, Any], *, cause: bool = False) -> str:
    error = step["error"]["cause"] if cause else step["error"]
    name: str = error["mro"][0]
    return name


@pytest.mark.parametrize("mode", MODES)
def test_migrations_and_crud_through_views(server: Any, db: dict[str, Any], mode: str) -> None:
    steps = run_scenario(db, "crud", mode)

    assert steps["create"]["status"] == 201
    assert steps["create_2"]["status"] == 201
    assert steps["update"]["status"] == 200
    assert steps["update"]["body"]["item"]["qty"] == 5
    # A duplicate in the batch rolls back the whole atomic block, the good rows included.
    assert steps["bulk_duplicate"]["status"] == 409
    assert steps["bulk_duplicate"]["body"]["code"] == 1062  # Django's own IntegrityError
    assert steps["delete"]["body"] == {"deleted": 1}
    listed = steps["list"]
    assert listed["status"] == 200
    assert [item["name"] for item in listed["body"]["items"]] == ["pear"]
    # One persistent connection served every request, set up as Django sets it up.
    state = listed["body"]["connection"]
    assert state["driver"] == DRIVERS[mode]
    assert state["isolation"] == "READ-COMMITTED"
    assert steps["create"]["body"]["thread_id"] == state["thread_id"]

    assert items(server, db) == ["pear"]
    applied = rows(server, db, "SELECT app, name FROM django_migrations")
    assert ("items", "0001_initial") in applied


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", ["idle", "kill"])
def test_persistent_connection_closed_between_requests(
    server: Any, db: dict[str, Any], scenario: str, mode: str
) -> None:
    """``idle``: the server drops the connection after ``wait_timeout`` (1 s, set by an
    ``init_command``); ``kill``: ``KILL CONNECTION`` from another session."""
    steps = run_scenario(db, scenario, mode)
    first, second, third = steps["first"], steps["second"], steps["third"]
    assert first["status"] == 201
    assert steps["server_closed_it"]

    if mode == "resilient":
        assert second["status"] == 201, second["error"]
        assert second["body"]["thread_id"] != first["body"]["thread_id"]
        assert third["status"] == 200
        assert [item["name"] for item in third["body"]["items"]] == ["a", "b"]
        state = third["body"]["connection"]
        reason = "idle" if scenario == "idle" else "liveness"
        assert state["reconnect_reasons"] == {reason: 1}
        # The new session is set up as the old one was: Django's isolation level
        # (replayed from the journal) and the init_command's wait_timeout.
        assert state["isolation"] == "READ-COMMITTED"
        assert state["wait_timeout"] == (1 if scenario == "idle" else 28800)
        assert items(server, db) == ["a", "b"]
    else:
        # Plain PyMySQL: the request that finds the dead connection fails. Django then
        # sees errors_occurred at request_finished, its ping fails, and it closes the
        # connection: the request after works again. The user's write is lost.
        assert second["status"] == 500
        assert error_class(second) == "django.db.utils.OperationalError"
        assert error_class(second, cause=True) == "pymysql.err.OperationalError"
        # Idle: the server reset the socket, the send fails (2006). Killed: the server
        # closed it, the send succeeds and the read finds the end (2013).
        assert second["error"]["args"][0] == (2006 if scenario == "idle" else 2013)
        assert third["status"] == 200
        assert [item["name"] for item in third["body"]["items"]] == ["a"]
        assert items(server, db) == ["a"]


@pytest.mark.parametrize("mode", MODES)
def test_connection_lost_inside_atomic(server: Any, db: dict[str, Any], mode: str) -> None:
    """Killed between two writes of one ``transaction.atomic()``: Django's own
    OperationalError, nothing committed, and the next requests work."""
    steps = run_scenario(db, "atomic_lost", mode)
    assert steps["warm"]["status"] == 200
    lost = steps["lost"]
    assert lost["status"] == 500
    assert error_class(lost) == "django.db.utils.OperationalError"
    assert lost["error"]["args"][0] == 2013
    cause = lost["error"]["cause"]
    if mode == "resilient":
        assert cause["mro"][0] == "resilient_dbapi.errors.TransactionLostError"
        assert "pymysql.err.OperationalError" in cause["mro"]
        assert cause["args"][0] == 2013
    else:
        assert cause["mro"][0] == "pymysql.err.OperationalError"

    assert steps["next_read"]["status"] == 200
    assert steps["next_read"]["body"]["items"] == []  # the first write was rolled back
    if mode == "resilient":
        assert steps["next_read"]["body"]["connection"]["transactions_lost"] == 1
    assert steps["next_write"]["status"] == 201
    assert items(server, db) == ["after"]


@pytest.mark.parametrize("mode", MODES)
def test_debug_tools_see_the_sql_sent_and_a_closed_cursor_is_djangos_error(
    db: dict[str, Any], mode: str
) -> None:
    """Django's MySQL backend reads the SQL it logs from ``cursor._executed`` (it was
    the string 'None' through the drop-in), and maps PyMySQL's ProgrammingError for a
    closed cursor to its own."""
    steps = run_scenario(db, "debug_queries", mode)
    [sql] = steps["captured"]["sql"]
    assert sql.startswith("SELECT COUNT(*)") and "'apple'" in sql
    assert error_class(steps["closed_cursor"]) == "django.db.utils.ProgrammingError"


@pytest.mark.parametrize("mode", ["engine", "mysqlclient"])
def test_the_engine_keeps_a_killed_persistent_connection_working(
    server: Any, db: dict[str, Any], mode: str
) -> None:
    """``ENGINE = "resilient_dbapi.contrib.django.mysql"`` (with ``OPTIONS["policies"]``)
    on Django's default driver, mysqlclient: the request after a ``KILL`` succeeds on a
    new connection set up as Django sets one up. Django's own backend fails it."""
    steps = run_scenario(db, "kill", mode)
    first, second, third = steps["first"], steps["second"], steps["third"]
    assert first["status"] == 201
    assert steps["server_closed_it"]
    if mode == "engine":
        assert second["status"] == 201, second["error"]
        state = third["body"]["connection"]
        assert state["driver"] == DRIVERS["resilient"]
        assert state["reconnects"] == 1  # found by a ping: mysqlclient shows no socket
        assert state["isolation"] == "READ-COMMITTED"
        assert items(server, db) == ["a", "b"]
    else:
        assert second["status"] == 500
        assert error_class(second, cause=True) == "MySQLdb.OperationalError"
        assert items(server, db) == ["a"]


@pytest.fixture
def pg_db(pg_server: Any) -> Any:
    """A fresh PostgreSQL database, as the scenarios' settings name one."""
    yield from postgres_database(pg_server)


def _pg_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": kwargs["host"],
        "port": kwargs["port"],
        "user": kwargs["user"],
        "password": "",
        "database": kwargs["dbname"],
    }


def pg_items(kwargs: dict[str, Any]) -> list[str]:
    """The item names committed, read on a separate plain psycopg connection."""
    with psycopg.connect(**kwargs, autocommit=True) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM items_item ORDER BY id")]


@pytest.mark.parametrize("mode", ["pg-engine", "pg"])
def test_the_postgresql_engine_keeps_a_killed_persistent_connection_working(
    pg_db: dict[str, Any], mode: str
) -> None:
    """``ENGINE = "resilient_dbapi.contrib.django.postgresql"`` (psycopg 3, with
    ``OPTIONS["policies"]``): the request after ``pg_terminate_backend`` succeeds on a new
    connection with Django's isolation level. Django's own backend fails it."""
    steps = run_scenario(_pg_settings(pg_db), "kill", mode)
    first, second, third = steps["first"], steps["second"], steps["third"]
    assert first["status"] == 201
    assert steps["server_closed_it"]
    if mode == "pg-engine":
        assert second["status"] == 201, second["error"]
        assert second["body"]["thread_id"] != first["body"]["thread_id"]
        state = third["body"]["connection"]
        assert state["driver"] == DRIVERS["resilient"]
        assert state["reconnects"] == 1
        assert state["isolation"] == "read committed"
        assert pg_items(pg_db) == ["a", "b"]
    else:
        assert second["status"] == 500
        assert error_class(second, cause=True).startswith("psycopg.")
        assert pg_items(pg_db) == ["a"]


def test_the_postgresql_engine_runs_djangos_migrations_and_views(pg_db: dict[str, Any]) -> None:
    """Migrations, CRUD, a duplicate rolling back an atomic batch (PostgreSQL's 23505)."""
    steps = run_scenario(_pg_settings(pg_db), "crud", "pg-engine")
    assert steps["create"]["status"] == 201
    assert steps["update"]["body"]["item"]["qty"] == 5
    assert steps["bulk_duplicate"]["status"] == 409
    assert steps["bulk_duplicate"]["body"]["code"] == "23505"
    assert steps["delete"]["body"]["deleted"] == 1
    assert pg_items(pg_db) == ["pear"]


def test_the_postgresql_engine_refuses_psycopg_pool_by_name() -> None:
    """``OPTIONS["pool"]`` would make psycopg_pool's plain connections: refused at once,
    naming the option and what to do instead."""
    from django.core.exceptions import ImproperlyConfigured

    from resilient_dbapi.contrib.django.postgresql.base import DatabaseWrapper

    with pytest.raises(ImproperlyConfigured, match=r"OPTIONS\['pool'\].*CONN_MAX_AGE"):
        DatabaseWrapper({"NAME": "shop", "OPTIONS": {"pool": True}})


def test_the_postgresql_engine_refuses_assume_role_by_name() -> None:
    """``OPTIONS["assume_role"]`` is a ``SET ROLE`` no new connection would be given."""
    from django.core.exceptions import ImproperlyConfigured

    from resilient_dbapi.contrib.django.postgresql.base import DatabaseWrapper

    with pytest.raises(ImproperlyConfigured, match=r"OPTIONS\['assume_role'\]"):
        DatabaseWrapper({"NAME": "shop", "OPTIONS": {"assume_role": "reader"}})


def test_the_postgresql_engine_keeps_registered_types_across_a_reconnect(
    pg_server: Any, pg_db: dict[str, Any]
) -> None:
    """What is registered on a connection's adapters (as django.contrib.postgres does
    for hstore) holds on the connection that replaces it after ``pg_terminate_backend``;
    on a plain new psycopg connection it is gone."""
    from psycopg.types.string import TextLoader

    from resilient_dbapi.contrib.django.postgresql.base import _Driver

    class Shouting(TextLoader):
        def load(self, data: Any) -> str:
            return str(super().load(data)).upper()

    conn = _Driver(None).connect(autocommit=True, **pg_db)
    conn.raw.adapters.register_loader("text", Shouting)
    cur = conn.cursor()
    cur.execute("SELECT 'quiet'::text")
    assert cur.fetchone() == ("QUIET",)
    with psycopg.connect(**pg_db, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (conn.raw.info.backend_pid,))
    time.sleep(0.6)  # past skip_recent: the socket check finds it gone
    cur.execute("SELECT 'quiet'::text")
    assert cur.fetchone() == ("QUIET",)
    assert conn.reconnects == 1
    conn.close()
    with psycopg.connect(**pg_db) as plain:
        assert plain.execute("SELECT 'quiet'::text").fetchone() == ("quiet",)


@pytest.mark.parametrize("replay", [False, True], ids=["replay-off", "replay-on"])
def test_a_django_transaction_lost_before_commit_goes_on_after_a_replay(
    server: Any, db: dict[str, Any], replay: bool, tmp_path: Path
) -> None:
    """The PyMySQL drop-in under Django, a profile with ``[replay_transaction]`` named by
    $RESILIENT_DBAPI_POLICY: a move (two rows locked, read, updated) killed between its
    updates goes on after a replay and commits once. Without replay the request fails.
    Django's ``create()`` of rows whose id the server assigns is never replayed (the new
    run's id differs from the one the first run returned): that request fails either
    way, with nothing of it committed."""
    env: dict[str, str] = {}
    if replay:
        profile = tmp_path / "replaying.toml"
        profile.write_text('extends = "default"\n\n[replay_transaction]\nmax_statements = 32\n')
        env["RESILIENT_DBAPI_POLICY"] = str(profile)
    steps = run_scenario(db, "move_lost", "resilient", env)
    moved, pair = steps["moved"], steps["pair"]
    quantities = dict(rows(server, db, "SELECT name, qty FROM items_item"))
    if replay:
        assert moved["status"] == 200, moved["error"]
        assert moved["body"]["connection"]["transactions_replayed"] == 1
        assert quantities == {"source": 90, "target": 110}
    else:
        assert moved["status"] == 500
        assert error_class(moved, cause=True) == "resilient_dbapi.errors.TransactionLostError"
        assert quantities == {"source": 100, "target": 100}
    assert pair["status"] == 500
    assert error_class(pair, cause=True) == "resilient_dbapi.errors.TransactionLostError"
    if replay:
        assert "diverged" in pair["error"]["cause"]["args"][1]
    assert steps["after"]["status"] == 200
