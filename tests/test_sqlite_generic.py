"""sqlite3 through the proxy (no network: everything passes through, unchanged), a few
psycopg surface details, and the generic fallback (the weakest mode) on a real server."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.sql
import pytest
from psycopg.rows import dict_row

import resilient_dbapi
from resilient_dbapi import MaxAge, OutcomeUnknownError, PingOnCheckout, adapters
from resilient_dbapi.adapters.generic import GenericAdapter

from .drivers import DRIVERS, postgres_database

PSYCOPG = next(d for d in DRIVERS if d.name == "psycopg")


@pytest.fixture
def lite() -> Iterator[Any]:
    conn = resilient_dbapi.connect(sqlite3.connect, ":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, uid TEXT UNIQUE NOT NULL)")
    yield conn
    conn.close()


def test_sqlite_passes_statements_and_results_through(lite: Any) -> None:
    cur = lite.cursor()
    cur.execute("INSERT INTO t (uid) VALUES (?)", ("a",))
    assert cur.lastrowid == 1 and cur.rowcount == 1
    cur.executemany("INSERT INTO t (uid) VALUES (?)", [("b",), ("c",)])
    lite.commit()
    cur.execute("SELECT uid FROM t ORDER BY id")  # no parameters: sqlite3 refuses None
    assert cur.fetchall() == [("a",), ("b",), ("c",)]
    assert [d[0] for d in cur.description] == ["uid"]
    lite.row_factory = sqlite3.Row  # a driver attribute, set on the driver's connection
    cur = lite.cursor()
    cur.execute("SELECT uid FROM t WHERE id = :id", {"id": 2})
    assert cur.fetchone()["uid"] == "b"


def test_sqlite_errors_reach_the_caller_unchanged(lite: Any) -> None:
    lite.execute("INSERT INTO t (uid) VALUES ('a')")
    cur = lite.cursor()
    with pytest.raises(sqlite3.IntegrityError) as caught:
        cur.execute("INSERT INTO t (uid) VALUES ('a')")
    assert type(caught.value) is sqlite3.IntegrityError
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        cur.execute("SELECT * FROM missing")
    assert lite.reconnects == 0
    assert lite.stats.transactions_lost == 0


def test_sqlite_with_block_commits_or_rolls_back_and_stays_open(lite: Any) -> None:
    with lite:
        lite.cursor().execute("INSERT INTO t (uid) VALUES ('kept')")
    with pytest.raises(ZeroDivisionError), lite:
        lite.cursor().execute("INSERT INTO t (uid) VALUES ('dropped')")
        1 / 0  # noqa: B018
    assert lite.open
    assert lite.execute("SELECT uid FROM t").fetchall() == [("kept",)]
    lite.cursor().execute("INSERT INTO t (uid) VALUES ('undone')")
    lite.rollback()
    assert lite.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)


def test_sqlite_is_never_replaced_by_a_policy() -> None:
    # A new connection to ":memory:" would be another, empty database.
    policies = [PingOnCheckout(idle=0.0), MaxAge(seconds=0.01, jitter=0.0)]
    conn = resilient_dbapi.connect(sqlite3.connect, ":memory:", policies=policies)
    conn.execute("CREATE TABLE kept (x)")
    time.sleep(0.05)
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM kept")
    assert cur.fetchone() == (0,)
    assert conn.reconnects == 0
    conn.close()


def test_sqlite_has_no_mysql_methods(lite: Any) -> None:
    for name in ("select_db", "query", "next_result", "kill", "begin"):
        assert not hasattr(lite, name), name
    with pytest.raises(AttributeError, match=r"select_db\(\) is not available"):
        lite.select_db("x")
    lite.ping()  # nothing to ask: never fails on an open in-process database
    assert not hasattr(lite.cursor(), "callproc")


# -- psycopg: what its users spell their own way ----------------------------------------


@pytest.fixture
def pgkw(pg_server: Any) -> Iterator[dict[str, Any]]:
    yield from postgres_database(pg_server)


def test_psycopg_with_block_commits_then_closes(pgkw: dict[str, Any]) -> None:
    with resilient_dbapi.connect(psycopg.connect, **pgkw) as conn:
        conn.execute("INSERT INTO t (uid) VALUES ('kept')")
    assert not conn.open
    with pytest.raises(ZeroDivisionError), resilient_dbapi.connect(psycopg.connect, **pgkw) as conn:
        conn.execute("INSERT INTO t (uid) VALUES ('dropped')")
        1 / 0  # noqa: B018
    with psycopg.connect(**pgkw) as plain:
        assert plain.execute("SELECT uid FROM t").fetchall() == [("kept",)]


def test_psycopg_autocommit_property_and_execute_survive_a_kill(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(psycopg.connect, **pgkw)
    assert conn.autocommit is False
    conn.autocommit = True  # journaled: the new connection gets it too
    pid = PSYCOPG.session_id(conn)
    PSYCOPG.kill(pg_server, pid)
    time.sleep(PingOnCheckout().skip_recent)
    assert conn.execute("SELECT 42").fetchall() == [(42,)]  # conn.execute() is resilient
    assert conn.reconnects == 1 and conn.autocommit is True and conn.raw.autocommit is True
    cur = conn.cursor(row_factory=dict_row)  # driver arguments pass through
    cur.execute("SELECT 1 AS one")
    assert cur.fetchone() == {"one": 1}
    conn.close()


def test_psycopg_composed_statements_are_classified_as_writes(pgkw: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(psycopg.connect, **pgkw, autocommit=True)
    cur = conn.cursor()
    cur.execute(
        psycopg.sql.SQL("INSERT INTO {} (uid) VALUES (%s)").format(psycopg.sql.Identifier("t")),
        ("composed",),
    )
    assert conn.execute("SELECT uid FROM t").fetchall() == [("composed",)]
    conn.close()


# -- the generic fallback ------------------------------------------------------------------


@pytest.fixture
def generic_psycopg(pgkw: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """psycopg served by the generic fallback instead of its adapter."""
    with psycopg.connect(**pgkw) as probe:
        generic = GenericAdapter.for_connection(probe)
    assert generic is not None
    adapters.register(generic)
    yield pgkw
    adapters._registry.remove(generic)


def test_generic_fallback_resends_a_read_and_reports_a_lost_write_of_unknown_outcome(
    pg_server: Any, generic_psycopg: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(psycopg.connect, **generic_psycopg)
    # The session id is read on the driver connection: to the generic fallback, which
    # cannot tell the dialect, pg_backend_pid() is a function MariaDB does not have.
    assert "generic" in repr(conn)
    PSYCOPG.kill(pg_server, PSYCOPG.session_id(conn.raw))
    conn.rollback()
    cur = conn.cursor()
    cur.execute("SELECT 42")  # fails on the dead connection, sent again: a plain read
    assert cur.fetchall() == [(42,)]
    assert conn.reconnects == 1
    cur.execute("INSERT INTO t (uid) VALUES ('lost')")
    PSYCOPG.kill(pg_server, PSYCOPG.session_id(conn.raw))
    # The generic fallback cannot tell the server: a table that does not roll back may
    # have kept the first write, so no rollback is proven.
    with pytest.raises(OutcomeUnknownError) as caught:
        cur.execute("INSERT INTO t (uid) VALUES ('second')")
    assert isinstance(caught.value, psycopg.OperationalError)
    conn.rollback()
    assert PSYCOPG.session_id(conn) > 0  # a new connection
    conn.close()
    with psycopg.connect(**generic_psycopg) as plain:
        assert plain.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
