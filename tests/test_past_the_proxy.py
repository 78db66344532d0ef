"""What a driver does past the proxy: transactions its own API opens, psycopg's COPY,
settings the server changed without the driver knowing, a driver that cannot say its
autocommit mode, several settings in one string. Real servers; each case names the
outcome it had before the proxy learned about it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import MySQLdb
import psycopg
import pytest
from psycopg.rows import dict_row, namedtuple_row

import resilient_dbapi
from resilient_dbapi import (
    OutcomeUnknownError,
    PingOnCheckout,
    SessionLostError,
    TransactionLostError,
    adapters,
)
from resilient_dbapi.adapters.generic import GenericAdapter
from resilient_dbapi.adapters.psycopg import PsycopgAdapter

from .drivers import DRIVERS, Driver, count_rows, postgres_database

pytestmark = pytest.mark.server

_BY_NAME = {d.name: d for d in DRIVERS}


def _kwargs(driver: Driver, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    if driver.server == "server":
        yield driver.translate(request.getfixturevalue("db"))
    else:
        yield from postgres_database(request.getfixturevalue("pg_server"))


def _psycopg_begin(conn: Any) -> Any:
    block = conn.transaction()
    block.__enter__()  # BEGIN, sent by psycopg itself (autocommit is on)
    return block  # kept: a block collected unfinished rolls back


def _connector_begin(conn: Any) -> None:
    conn.start_transaction()


_OWN_BEGIN: dict[str, Callable[[Any], Any]] = {
    "psycopg": _psycopg_begin,
    "mysql-connector": _connector_begin,
}


@pytest.fixture(params=sorted(_OWN_BEGIN))
def own_begin(request: pytest.FixtureRequest) -> Iterator[tuple[Driver, dict[str, Any], Any]]:
    driver = _BY_NAME[request.param]
    for kwargs in _kwargs(driver, request):
        yield driver, kwargs, request.getfixturevalue(driver.server)


@pytest.mark.parametrize(
    ("idle", "sql"),
    [(0.0, "SELECT 42"), (PingOnCheckout().skip_recent + 0.1, "INSERT INTO t (uid) VALUES ('x')")],
    ids=["read-at-once", "write-after-idle"],
)
def test_a_transaction_the_driver_opened_is_never_replaced_silently(
    own_begin: tuple[Driver, dict[str, Any], Any], idle: float, sql: str
) -> None:
    # Before: the read was sent again on a new connection outside the transaction, and
    # the write (after the socket check had read the FATAL) was autocommitted there.
    driver, kwargs, srv = own_begin
    conn = resilient_dbapi.connect(driver.connect, **kwargs, autocommit=True)
    pid = driver.session_id(conn)
    block = _OWN_BEGIN[driver.name](conn)
    driver.kill(srv, pid)
    time.sleep(idle)
    with pytest.raises(TransactionLostError) as caught:
        conn.cursor().execute(sql)
    assert isinstance(caught.value, driver.operational_error)
    assert conn.reconnects == 0
    conn.rollback()
    assert count_rows(driver, kwargs) == 0
    assert driver.session_id(conn) != pid  # and then the connection is usable again
    conn.close()
    del block


@pytest.fixture
def pgkw(pg_server: Any) -> Iterator[dict[str, Any]]:
    yield from postgres_database(pg_server)


def test_psycopg_copy_counts_as_a_write(pg_server: Any, pgkw: dict[str, Any]) -> None:
    # Before: the proxy saw only reads, so the lost COMMIT was "a commit of nothing" and
    # reported success while the copied rows were gone.
    driver = _BY_NAME["psycopg"]
    conn = resilient_dbapi.connect(psycopg.connect, **pgkw)
    pid = driver.session_id(conn)
    cur = conn.cursor()
    with cur.copy("COPY t (uid) FROM STDIN") as copy:
        copy.write_row(("copied",))
    driver.kill(pg_server, pid)
    with pytest.raises((TransactionLostError, OutcomeUnknownError)):
        conn.commit()
    conn.rollback()
    assert count_rows(driver, pgkw) == 0
    with cur.copy("COPY t (uid) FROM STDIN") as copy:  # on a new connection, and kept
        copy.write_row(("again",))
    conn.commit()
    assert count_rows(driver, pgkw) == 1
    conn.close()


def test_psycopg_reset_and_listen_are_kept_as_the_session_had_them(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    """A setting the session RESET stays reset on the connection that replaces it (the
    replay used to set it again); a LISTEN registration, which no replay makes again,
    is reported lost (SessionLostError, once) rather than notifications silently
    missed. Plain psycopg: the next statement fails."""
    driver = _BY_NAME["psycopg"]
    conn = resilient_dbapi.connect(psycopg.connect, autocommit=True, **pgkw)
    cur = conn.cursor()
    cur.execute("SHOW search_path")
    (default,) = cur.fetchone()
    cur.execute("SET search_path TO pg_catalog")
    cur.execute("SET application_name = 'kept'")
    cur.execute("RESET search_path")
    driver.kill(pg_server, driver.session_id(conn))
    time.sleep(0.6)  # past skip_recent: the socket check finds it gone
    cur.execute("SELECT current_setting('search_path'), current_setting('application_name')")
    assert cur.fetchone() == (default, "kept")
    assert conn.reconnects == 1
    cur.execute("LISTEN jobs")
    driver.kill(pg_server, driver.session_id(conn))
    time.sleep(0.6)
    with pytest.raises(resilient_dbapi.SessionLostError, match="LISTEN"):
        cur.execute("SELECT 1")
    cur.execute("SELECT 1")  # the next statement runs on the new session
    conn.close()

    plain = psycopg.connect(autocommit=True, **pgkw)
    driver.kill(pg_server, driver.session_id(plain))
    with pytest.raises(psycopg.OperationalError):
        plain.execute("SELECT 1")
    plain.close()


def test_psycopg_set_config_is_a_setting_kept_across_a_reconnect(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    """``SELECT set_config('name', value, false)`` (how Django sets the time zone, how
    row-level security is fed a tenant) is a session setting: replayed on the new
    connection after the old one was terminated. Before, it was an unknown function's
    state, and the next statement raised SessionLostError."""
    driver = _BY_NAME["psycopg"]
    conn = resilient_dbapi.connect(psycopg.connect, autocommit=True, **pgkw)
    cur = conn.cursor()
    cur.execute("SELECT set_config('app.tenant', %s, false)", ("t42",))
    cur.execute("SELECT set_config('TimeZone', 'Asia/Tokyo', false)")
    pid = driver.session_id(conn)
    driver.kill(pg_server, pid)
    time.sleep(0.6)  # past skip_recent: the socket check finds it gone
    cur.execute("SELECT current_setting('app.tenant'), current_setting('TimeZone')")
    assert cur.fetchone() == ("t42", "Asia/Tokyo")
    assert conn.reconnects == 1
    cur.execute("SELECT set_config('app.tenant', 'one', true)")  # one transaction's only
    driver.kill(pg_server, driver.session_id(conn))
    time.sleep(0.6)
    with pytest.raises(resilient_dbapi.SessionLostError):
        cur.execute("SELECT 1")
    conn.close()


def test_psycopg_types_registered_on_the_connection_survive_a_reconnect(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    """A loader registered on the connection (as ``register_hstore`` or a composite
    type does) loads the same on the connection that replaces it: the new one starts
    from the old one's adapters. Before, it silently loaded plain strings."""
    from psycopg.types.string import TextLoader

    class Shouting(TextLoader):
        def load(self, data: Any) -> str:
            return str(super().load(data)).upper()

    driver = _BY_NAME["psycopg"]
    conn = resilient_dbapi.connect(psycopg.connect, autocommit=True, **pgkw)
    try:
        conn.adapters.register_loader("text", Shouting)
        cur = conn.cursor()
        cur.execute("SELECT 'quiet'::text")
        assert cur.fetchone() == ("QUIET",)
        driver.kill(pg_server, driver.session_id(conn))
        time.sleep(0.6)  # past skip_recent: the socket check finds it gone
        cur.execute("SELECT 'quiet'::text")
        assert cur.fetchone() == ("QUIET",)
        assert conn.reconnects == 1
    finally:
        conn.close()


def test_a_connect_callable_that_takes_no_arguments_still_reconnects(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    """``connect(lambda: psycopg.connect(...))``: what a replacement would carry over
    (``context=``) is not forced on a callable that takes no such argument."""
    driver = _BY_NAME["psycopg"]
    conn = resilient_dbapi.connect(lambda: psycopg.connect(autocommit=True, **pgkw))
    try:
        driver.kill(pg_server, driver.session_id(conn))
        time.sleep(0.6)
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
        assert conn.reconnects == 1
    finally:
        conn.close()


def test_a_postgresql_temp_table_is_never_silently_replaced_by_the_permanent_one(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    """``CREATE TEMP TABLE t`` shadows the permanent ``t`` for the session. Had the
    session been replaced silently, the next INSERT would write the permanent table;
    it raises SessionLostError instead, and the permanent table stays empty."""
    driver = _BY_NAME["psycopg"]
    conn = resilient_dbapi.connect(psycopg.connect, autocommit=True, **pgkw)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE t (id SERIAL, uid VARCHAR(64), v INT)")
        driver.kill(pg_server, driver.session_id(conn))
        time.sleep(0.6)  # past skip_recent: the socket check finds it gone
        with pytest.raises(resilient_dbapi.SessionLostError, match="temporary tables"):
            cur.execute("INSERT INTO t (uid) VALUES ('meant for the temp table')")
    finally:
        conn.close()
    assert count_rows(driver, pgkw) == 0


def test_psycopg_plain_driver_loses_a_copy_with_the_connection(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    driver = _BY_NAME["psycopg"]
    with psycopg.connect(**pgkw) as plain:
        pid = plain.execute("SELECT pg_backend_pid()").fetchone()[0]
        with plain.cursor().copy("COPY t (uid) FROM STDIN") as copy:
            copy.write_row(("copied",))
        driver.kill(pg_server, pid)
        with pytest.raises(psycopg.OperationalError):
            plain.commit()
    assert count_rows(driver, pgkw) == 0


def test_connector_autocommit_follows_what_the_server_ran(server: Any, db: dict[str, Any]) -> None:
    # Before: the driver's cached flag still said autocommit off after the server ran
    # SET autocommit = 1, so a write lost in flight was reported "rolled back".
    driver = _BY_NAME["mysql-connector"]
    kwargs = driver.translate(db)
    conn = resilient_dbapi.connect(driver.connect, **kwargs)
    assert conn.autocommit is False
    cur = conn.cursor()
    cur.execute("SET autocommit = 1")
    assert conn.autocommit is True and conn.raw.autocommit is True  # the server's answer
    pid = driver.session_id(conn)
    killer = threading.Thread(target=lambda: (time.sleep(0.5), driver.kill(server, pid)))
    killer.start()
    try:
        with pytest.raises(OutcomeUnknownError):
            conn.cursor().execute(driver.slow_write_sql)
    finally:
        killer.join()
    assert count_rows(driver, kwargs) <= 1
    assert conn.autocommit is True  # the setting was replayed on the new connection
    conn.close()


@pytest.fixture
def generic_mysqlclient(db: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """mysqlclient served by the generic fallback: its ``autocommit`` is a method, so the
    fallback cannot read the mode."""
    probe = MySQLdb.connect(**db)
    generic = GenericAdapter.for_connection(probe)
    probe.close()
    assert generic is not None
    adapters.register(generic)
    yield db
    adapters._registry.remove(generic)


def test_generic_fallback_never_claims_a_rollback_it_guessed(
    server: Any, generic_mysqlclient: dict[str, Any]
) -> None:
    # Before: TransactionLostError ("rolled back") although the first write, made with
    # autocommit on, was committed.
    driver = _BY_NAME["mysqlclient"]
    conn = resilient_dbapi.connect(MySQLdb.connect, **generic_mysqlclient)
    assert "generic" in repr(conn)
    conn.autocommit(True)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('first')")
    driver.kill(server, driver.session_id(conn))
    with pytest.raises(OutcomeUnknownError):
        cur.execute("INSERT INTO t (uid) VALUES ('second')")
    assert count_rows(driver, generic_mysqlclient) == 1  # 'first' was committed after all
    with pytest.raises(OutcomeUnknownError):  # and so it says until rollback()
        cur.execute("INSERT INTO t (uid) VALUES ('third')")
    conn.rollback()
    cur.execute("INSERT INTO t (uid) VALUES ('fourth')")
    assert count_rows(driver, generic_mysqlclient) == 2
    conn.close()


@pytest.mark.parametrize("name", ["mysqlclient", "pymysql"])
def test_several_settings_in_one_string_are_replayed(
    name: str, server: Any, db: dict[str, Any]
) -> None:
    # Django sends its connection settings this way. Before: not journaled, so the next
    # statement after a kill raised SessionLostError.
    driver = _BY_NAME[name]
    extra: dict[str, Any] = {}
    if name == "pymysql":
        from pymysql.constants import CLIENT

        extra["client_flag"] = CLIENT.MULTI_STATEMENTS
    conn = resilient_dbapi.connect(driver.connect, **db, **extra)
    cur = conn.cursor()
    cur.execute(
        "SET SESSION sql_auto_is_null = 1; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
    )
    while cur.nextset():
        pass
    driver.kill(server, driver.session_id(conn))
    time.sleep(PingOnCheckout().skip_recent + 0.1)
    try:
        cur.execute("SELECT @@sql_auto_is_null, @@tx_isolation")
    except SessionLostError:  # pragma: no cover - the failure this test guards against
        pytest.fail("the settings were not journaled")
    assert cur.fetchall() == ((1, "READ-COMMITTED"),)
    assert conn.reconnects == 1
    conn.close()


def test_driver_attributes_set_through_the_proxy_survive_a_reconnect(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    # Before: the new connection came back with the driver's defaults: tuples, not dicts.
    driver = _BY_NAME["psycopg"]
    conn = resilient_dbapi.connect(psycopg.connect, **pgkw, autocommit=True)
    pid = driver.session_id(conn)
    conn.row_factory = dict_row
    cur = conn.cursor()
    cur.execute("SELECT 1 AS one")
    assert cur.fetchall() == [{"one": 1}]
    named = conn.cursor()
    named.row_factory = namedtuple_row
    driver.kill(pg_server, pid)
    time.sleep(PingOnCheckout().skip_recent + 0.1)
    cur.execute("SELECT 2 AS two")
    assert cur.fetchall() == [{"two": 2}] and conn.reconnects == 1
    named.execute("SELECT 3 AS three")
    assert named.fetchone().three == 3  # the cursor's own setting, on its new cursor
    conn.close()


def test_psycopg_ping_fails_on_a_terminated_backend(pg_server: Any, pgkw: dict[str, Any]) -> None:
    raw = psycopg.connect(**pgkw, autocommit=True)
    try:
        pid = raw.execute("SELECT pg_backend_pid()").fetchone()[0]
        _BY_NAME["psycopg"].kill(pg_server, pid)
        with pytest.raises(psycopg.OperationalError):
            PsycopgAdapter().ping(raw, 1.0)
    finally:
        raw.close()


def test_psycopg_fatal_connect_errors_are_not_retried(pgkw: dict[str, Any]) -> None:
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as caught:
        resilient_dbapi.connect(psycopg.connect, **{**pgkw, "dbname": "no_such_database"})
    assert time.monotonic() - started < 1.0  # no backoff: waiting would not help
    assert PsycopgAdapter().error_code(caught.value) == "3D000"


def test_a_bad_setting_later_in_a_string_is_raised_and_never_replayed(
    server: Any, db: dict[str, Any]
) -> None:
    # Before: execute() returned, both parts were journaled, and every statement after a
    # reconnect failed with 1298 for good.
    driver = _BY_NAME["mysqlclient"]
    conn = resilient_dbapi.connect(MySQLdb.connect, **db)
    cur = conn.cursor()
    with pytest.raises(MySQLdb.OperationalError) as caught:
        cur.execute("SET SESSION sql_mode = 'ANSI_QUOTES'; SET time_zone = 'Nowhere/Bogus'")
    assert caught.value.args[0] == 1298  # at execute(), where it belongs
    driver.kill(server, driver.session_id(conn))
    time.sleep(PingOnCheckout().skip_recent + 0.1)
    cur = conn.cursor()
    cur.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
    assert cur.fetchall() == (("ANSI_QUOTES", "SYSTEM"),)  # the good part kept, not the bad
    assert conn.reconnects == 1
    conn.close()


def test_psycopg_copy_lost_inside_a_transaction_block_is_never_split(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    # Before: the COPY's error was psycopg's own, the proxy forgot the block's
    # transaction, and the next INSERT committed alone on a new connection.
    driver = _BY_NAME["psycopg"]
    conn = resilient_dbapi.connect(psycopg.connect, **pgkw, autocommit=True)
    pid = driver.session_id(conn)
    block = conn.transaction()
    block.__enter__()
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('one')")
    with pytest.raises(TransactionLostError), cur.copy("COPY t (uid) FROM STDIN") as copy:
        copy.write_row(("two",))
        driver.kill(pg_server, pid)
        for _ in range(200):  # until psycopg notices: its buffer fills, or the end
            copy.write_row(("three",))
    with pytest.raises(TransactionLostError):
        cur.execute("INSERT INTO t (uid) VALUES ('four')")
    conn.rollback()
    assert count_rows(driver, pgkw) == 0
    conn.close()
    del block


def test_an_attribute_set_after_the_connection_was_given_up_is_kept(
    pg_server: Any, pgkw: dict[str, Any]
) -> None:
    driver = _BY_NAME["psycopg"]
    conn = resilient_dbapi.connect(psycopg.connect, **pgkw)  # read_only shapes transactions
    pid = driver.session_id(conn)
    conn.rollback()
    thread = threading.Thread(target=lambda: (time.sleep(0.5), driver.kill(pg_server, pid)))
    thread.start()
    try:
        with pytest.raises(TransactionLostError):
            conn.cursor().execute(driver.slow_write_sql)  # the connection is given up
    finally:
        thread.join()
    conn.rollback()
    conn.read_only = True  # before: "the connection is closed"
    cur = conn.cursor()
    cur.execute("SHOW transaction_read_only")
    assert cur.fetchall() == [("on",)] and conn.reconnects == 1
    conn.close()
