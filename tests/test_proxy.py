"""The PEP 249 surface of the proxy, against a real MariaDB."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
import pytest
import sqlalchemy

import resilient_dbapi
from resilient_dbapi import ResilientConnection, ResilientCursor

from .conftest import SLEEP_WRITE, kill, killed_in_flight, rows

pytestmark = pytest.mark.server


@pytest.fixture
def conn(db: dict[str, Any]) -> Any:
    c = resilient_dbapi.connect(pymysql.connect, **db)
    yield c
    c.close()


def test_cursor_basics(conn: Any) -> None:
    assert isinstance(conn, ResilientConnection)
    with conn.cursor() as cur:
        assert isinstance(cur, ResilientCursor)
        assert cur.connection is conn
        assert cur.execute("INSERT INTO t (uid, v) VALUES (%s, %s)", ("a", 1)) == 1
        assert cur.lastrowid == 1
        assert cur.rowcount == 1
        cur.executemany("INSERT INTO t (uid, v) VALUES (%s, %s)", [("b", 2), ("c", 3)])
        assert cur.rowcount == 2
        cur.execute("SELECT uid, v FROM t ORDER BY id")
        assert [d[0] for d in cur.description] == ["uid", "v"]
        assert cur.fetchone() == ("a", 1)
        assert cur.rownumber == 1
        assert cur.fetchmany(1) == (("b", 2),)
        assert cur.fetchall() == (("c", 3),)
        cur.execute("SELECT uid FROM t ORDER BY id")
        assert [r[0] for r in cur] == ["a", "b", "c"]
        cur.execute("SELECT uid FROM t ORDER BY id")
        cur.scroll(2, mode="absolute")
        assert cur.fetchone() == ("c",)
        cur.arraysize = 2
        assert cur.arraysize == 2
        cur.setinputsizes(1)
        cur.setoutputsize(1)
    conn.commit()


def test_cursor_classes(conn: Any) -> None:
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone() == {"one": 1}
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute("SELECT seq FROM seq_1_to_1000")
        assert cur.fetchone() == (1,)
        assert len(cur.fetchmany(10)) == 10
        assert len(cur.fetchall()) == 989
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute("SELECT seq FROM seq_1_to_1000")
    cur.fetchone()
    cur.close()  # drains the rest
    other = conn.cursor()
    other.execute("SELECT 2")
    assert other.fetchone() == (2,)


def test_callproc_and_nextset(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("CREATE PROCEDURE two() BEGIN SELECT 1; SELECT 2; END")
    cur.callproc("two")
    assert cur.fetchall() == ((1,),)
    assert cur.nextset()
    assert cur.fetchall() == ((2,),)


def test_driver_attributes_pass_through(conn: Any, db: dict[str, Any]) -> None:
    assert conn.open
    assert isinstance(conn.thread_id(), int)
    assert conn.escape("it's") == "'it\\'s'"
    assert "MariaDB" in conn.get_server_info()
    assert conn.character_set_name() == "utf8mb4"
    assert conn.db == db["database"].encode()
    assert conn.server_status == conn.raw.server_status
    assert conn.get_autocommit() is False
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('x')")
    assert conn.insert_id() == 1
    assert cur.mogrify("SELECT %s", (1,)) == "SELECT 1"
    assert conn.OperationalError is pymysql.err.OperationalError


def test_driver_errors_pass_through_unchanged(conn: Any) -> None:
    cur = conn.cursor()
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        cur.execute("SELEC 1")
    assert type(info.value) is pymysql.err.ProgrammingError
    cur.execute("CREATE TABLE u (id INT PRIMARY KEY)")
    cur.execute("INSERT INTO u VALUES (1)")
    with pytest.raises(pymysql.err.IntegrityError):
        cur.execute("INSERT INTO u VALUES (1)")
    thread = conn.thread_id()
    cur.execute("SELECT 1")
    assert conn.thread_id() == thread and conn.reconnects == 0


def test_a_cursor_made_before_a_reconnect_moves_to_the_new_connection(
    server: Any, conn: Any
) -> None:
    cur = conn.cursor(pymysql.cursors.DictCursor)
    cur.arraysize = 7
    cur.execute("SELECT 1 AS one")
    kill(server, conn.thread_id())
    cur.execute("SELECT 2 AS two")
    assert cur.fetchone() == {"two": 2}
    assert cur.arraysize == 7
    assert conn.reconnects == 1


def test_ping_replaces_a_dead_connection(server: Any, conn: Any) -> None:
    old = conn.thread_id()
    kill(server, old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conn.ping(reconnect=False)  # PyMySQL's signature; never a deprecation warning
    assert conn.thread_id() != old
    conn.ping()


def test_session_settings_made_through_the_api_survive_a_reconnect(
    server: Any, conn: Any, db: dict[str, Any]
) -> None:
    conn.autocommit(True)
    conn.select_db("mysql")
    kill(server, conn.thread_id())
    time.sleep(0.6)  # past the default skip window: found by the socket check
    cur = conn.cursor()
    cur.execute("SELECT @@autocommit, DATABASE()")
    assert cur.fetchone() == (1, "mysql")
    assert conn.reconnects == 1


def test_an_unbuffered_read_killed_mid_stream_raises_then_recovers(server: Any, conn: Any) -> None:
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute("SELECT a.seq FROM seq_1_to_100000 a, seq_1_to_10 b")
    cur.fetchone()
    kill(server, conn.thread_id())
    with pytest.raises(pymysql.err.OperationalError):
        while cur.fetchmany(1000):
            pass
    other = conn.cursor()
    other.execute("SELECT 3")
    assert other.fetchone() == (3,)


def test_closed_connection_and_cursor_raise_the_drivers_errors(conn: Any) -> None:
    cur = conn.cursor()
    cur.close()
    cur.close()  # harmless twice
    # PyMySQL's own class for a closed cursor (Django's MySQL backend expects it).
    with pytest.raises(pymysql.err.ProgrammingError, match="Cursor closed"):
        cur.execute("SELECT 1")
    conn.close()
    conn.close()
    assert not conn.open
    with pytest.raises(pymysql.err.InterfaceError, match="connection was closed"):
        conn.cursor()
    with pytest.raises(pymysql.err.InterfaceError, match="connection was closed"):
        conn.commit()


def test_with_block_closes_the_connection(db: dict[str, Any]) -> None:
    with resilient_dbapi.connect(pymysql.connect, **db) as c:
        c.cursor().execute("SELECT 1")
    assert not c.open


def test_secrets_stay_out_of_repr_and_errors(server: Any, db: dict[str, Any]) -> None:
    secret = "s3cr3t-Pa55"
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'secretive'@'%%' IDENTIFIED BY %s", (secret,))
        cur.execute(f"GRANT ALL ON {db['database']}.* TO 'secretive'@'%'")
    kwargs = {**db, "user": "secretive", "password": secret, "autocommit": True}
    conn = resilient_dbapi.connect(pymysql.connect, **kwargs)
    maker = resilient_dbapi.creator(pymysql.connect, **kwargs)
    cur = conn.cursor()
    texts = [repr(conn), str(conn), repr(cur), repr(maker), repr(conn._connector)]
    errors = []
    for _ in range(2):
        try:  # killed in flight: outcome unknown
            with killed_in_flight(server, conn.thread_id()):
                cur.execute(SLEEP_WRITE, ("param-secret", "param-secret"))
        except resilient_dbapi.OutcomeUnknownError as exc:
            errors += [str(exc), repr(exc), str(exc.__cause__)]
    assert errors
    assert not [t for t in texts + errors if secret in t or "param-secret" in t]


class Bare:
    """Looks like a DB-API connection, but its driver has no PEP 249 exception classes."""

    def cursor(self) -> None: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


def test_bad_arguments_say_what_is_allowed() -> None:
    with pytest.raises(TypeError, match="driver_connect must be a DB-API connect callable"):
        resilient_dbapi.connect("pymysql")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a DB-API connection"):
        resilient_dbapi.connect(lambda: object())
    with pytest.raises(TypeError, match=r"no adapter for .*Bare connections.*register one"):
        resilient_dbapi.connect(Bare)
    with pytest.raises(TypeError, match="policies must be None"):
        resilient_dbapi.connect(pymysql.connect, policies=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a policy"):
        resilient_dbapi.creator(pymysql.connect, policies=["fast"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no policy profile named 'fast'"):
        resilient_dbapi.creator(pymysql.connect, policies="fast")
    with pytest.raises(TypeError, match="on_connect must be a list of SQL statements"):
        resilient_dbapi.connect(pymysql.connect, on_connect="SET x = 1")
    with pytest.raises(TypeError, match="listeners must be a list"):
        resilient_dbapi.connect(pymysql.connect, listeners=print)  # type: ignore[arg-type]


def test_unknown_connect_options_fail_at_once_with_the_drivers_message(
    db: dict[str, Any],
) -> None:
    calls = []

    def counting(**kwargs: Any) -> Any:
        calls.append(1)
        return pymysql.connect(**kwargs)

    with pytest.raises(TypeError, match="unexpected keyword argument 'pasword'"):
        resilient_dbapi.connect(counting, **db, pasword="x")
    assert len(calls) == 1  # not retried


def test_sqlalchemy_pre_ping_works_through_the_proxy(server: Any, db: dict[str, Any]) -> None:
    engine = sqlalchemy.create_engine(
        "mysql+pymysql://",
        pool_pre_ping=True,
        creator=resilient_dbapi.creator(pymysql.connect, **db),
    )
    try:
        with engine.connect() as c:
            thread = c.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        kill(server, int(thread))
        with engine.connect() as c:
            assert c.exec_driver_sql("SELECT 42").scalar() == 42
    finally:
        engine.dispose()


def test_drop_in_module(db: dict[str, Any], tmp_path: Path, monkeypatch: Any) -> None:
    from resilient_dbapi import pymysql as drop_in

    assert set(pymysql.__all__) <= set(drop_in.__all__)
    assert drop_in.err is pymysql.err and drop_in.cursors is pymysql.cursors
    assert drop_in.OperationalError is pymysql.err.OperationalError
    assert drop_in.version_info >= (1, 4, 3)
    conn = drop_in.connect(**db)
    assert isinstance(conn, ResilientConnection)
    assert conn._engine.ping is not None and conn._engine.ping.idle == 30.0
    profile = tmp_path / "p.toml"
    profile.write_text(
        "[ping_on_checkout]\nidle = 7.0\n[max_age]\nenabled = false\n"
        "[retry_on_error]\nenabled = false\n[dead_peer_timeout]\nenabled = false\n"
    )
    monkeypatch.setenv(drop_in.POLICY_ENV, str(profile))
    conn = drop_in.connect(**db)
    assert conn._engine.ping is not None and conn._engine.ping.idle == 7.0
    assert conn._engine.retry is None
    monkeypatch.setenv(drop_in.POLICY_ENV, "paranoid")  # a shipped profile, by name
    conn = drop_in.connect(**db)
    assert conn._engine.ping is not None and conn._engine.ping.idle == 0.0
    cur = conn.cursor()
    cur.execute("SELECT 1")  # pinged first: paranoid pings at every checkout
    assert conn.stats.pings == 1


def test_policies_by_profile_name(db: dict[str, Any]) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, policies="strict")
    assert conn._engine.retry is not None and conn._engine.retry.resend == 0
    conn.cursor().execute("SELECT 1")


def test_install_as_mysqldb(monkeypatch: Any) -> None:
    from resilient_dbapi import pymysql as drop_in

    for name in [n for n in sys.modules if n == "MySQLdb" or n.startswith("MySQLdb.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "MySQLdb", None)  # restored after the test
    drop_in.install_as_MySQLdb()
    import MySQLdb  # type: ignore[import-not-found]
    from MySQLdb.constants import CLIENT  # type: ignore[import-not-found]
    from MySQLdb.converters import conversions  # type: ignore[import-not-found]

    assert MySQLdb is drop_in
    assert CLIENT.MULTI_STATEMENTS and conversions
    # Plain deletion: monkeypatch.delitem would put these aliases back at teardown, and a
    # later test importing the real MySQLdb would get PyMySQL's submodules.
    for name in [n for n in sys.modules if n.startswith("MySQLdb.")]:
        del sys.modules[name]


def test_ground_truth_helper_sees_committed_rows(db: dict[str, Any], server: Any) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    conn.cursor().execute("INSERT INTO t (uid) VALUES ('seen')")
    assert rows(server, db, "SELECT uid FROM t") == [("seen",)]
