"""Secrets (issue 7): passwords and statement parameters stay out of logs, reprs, events,
stats and exception chains under every fault.

Faults (KILL, idle timeout, refused connect, server down past the deadline, a bad or
changed password, a blackhole, a cut after the write) are run with a distinctive password
and a distinctive statement parameter, and every trace is searched for them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiomysql
import MySQLdb
import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import (
    OutcomeUnknownError,
    PingOnCheckout,
    RetryOnError,
    SessionLostError,
    TransactionLostError,
    aio,
)
from resilient_dbapi.events import Event, GaveUp, OutcomeUnknown, Pinged, Reconnected, Retrying
from resilient_dbapi.testing import FaultProxy, MariaDBServer, free_port

from .conftest import SLEEP_WRITE, kill, killed_in_flight


def _token(prefix: str) -> str:
    """A distinctive value made at run time (so no traceback's source line shows it)."""
    return f"{prefix}-{secrets.token_hex(8)}"


def _exception_texts(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *(repr(a) for a in current.args)]
        texts += [repr(getattr(current, "__notes__", None))]
        texts += [repr(vars(current)) if hasattr(current, "__dict__") else ""]
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return texts


class Witness:
    """Everything a fault leaves where a person, a log collector or an error tracker
    may see it: events, log records, exceptions, reprs."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="resilient_dbapi")
        self.caplog = caplog
        self.events: list[Event] = []
        self.errors: list[BaseException] = []
        self.texts: list[str] = []

    def listener(self, event: Event) -> None:
        self.events.append(event)

    def error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def look(self, *objects: object) -> None:
        for obj in objects:
            self.texts += [repr(obj), str(obj)]

    def expect(self, call: Callable[[], object], *errors: type[BaseException]) -> BaseException:
        """Call, expecting one of ``errors`` (the driver's, or ours); keep what it raised."""
        with pytest.raises(errors) as info:
            call()
        self.error(info.value)
        return info.value

    def all_texts(self) -> list[str]:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        records = [r for r in self.caplog.records if r.name.startswith("resilient_dbapi")]
        texts = list(self.texts)
        texts += [repr(event) for event in self.events]
        for record in records:
            texts += [formatter.format(record), repr(record.args), repr(record.__dict__)]
        for exc in self.errors:
            texts += _exception_texts(exc)
        return texts

    def assert_clean(self, *values: str) -> None:
        leaks = [(v, t) for t in self.all_texts() for v in values if v in t]
        assert not leaks, f"secret or parameter leaked: {leaks[:3]}"

    def kinds(self) -> set[type[Event]]:
        return {type(event) for event in self.events}

    def warnings(self) -> int:
        return sum(
            r.levelno >= logging.WARNING
            for r in self.caplog.records
            if r.name.startswith("resilient_dbapi")
        )


def test_the_witness_sees_a_leak(caplog: pytest.LogCaptureFixture) -> None:
    """The search is not blind: a secret in a log line, an event, a chained exception or
    a repr is found."""
    secret = _token("pw")
    for leak in ("log", "event", "cause", "repr"):
        caplog.clear()
        w = Witness(caplog)
        if leak == "log":
            logging.getLogger("resilient_dbapi.x").debug("connecting with %s", secret)
        elif leak == "event":
            w.listener(Retrying(secret, "connect", 1, 0.0, None))
        elif leak == "cause":
            try:
                try:
                    raise ValueError(secret)
                except ValueError as inner:
                    raise RuntimeError("outer") from inner
            except RuntimeError as outer:
                w.error(outer)
        else:
            w.look({"password": secret})
        with pytest.raises(AssertionError):
            w.assert_clean(secret)


@dataclass
class Login:
    kwargs: dict[str, Any]
    user: str
    password: str


@pytest.fixture
def login(server: Any, db: dict[str, Any]) -> Iterator[Login]:
    """A user of its own with a distinctive password, allowed into the test database."""
    user, password = f"sec_{secrets.token_hex(4)}", _token("pw")
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT ALL ON {db['database']}.* TO '{user}'@'%'")
    try:
        yield Login({**db, "user": user, "password": password}, user, password)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


INSERT = "INSERT INTO t (uid) VALUES (%s)"
COUNT = "SELECT COUNT(*) FROM t WHERE uid = %s"


@pytest.mark.server
def test_no_secret_after_kill(server: Any, login: Login, caplog: pytest.LogCaptureFixture) -> None:
    """KILL before a read (sent again), during a write (OutcomeUnknownError), inside a
    transaction (TransactionLostError), with a user variable holding the parameter
    (SessionLostError)."""
    param = _token("param")
    w = Witness(caplog)
    conn = resilient_dbapi.connect(
        pymysql.connect, **login.kwargs, autocommit=True, listeners=[w.listener]
    )
    cur = conn.cursor()
    cur.execute(COUNT, (param,))
    kill(server, conn.thread_id())
    cur.execute(COUNT, (param,))  # lost after it was sent: a read, sent again
    with killed_in_flight(server, conn.thread_id()):
        w.expect(lambda: cur.execute(SLEEP_WRITE, (param, param)), OutcomeUnknownError)
    conn.begin()
    cur.execute(INSERT, (param,))
    kill(server, conn.thread_id())
    w.expect(lambda: cur.execute(INSERT, (param,)), TransactionLostError)
    w.expect(lambda: cur.execute(COUNT, (param,)), TransactionLostError)
    conn.rollback()
    cur.execute("SET @token = %s", (param,))
    kill(server, conn.thread_id())
    w.expect(lambda: cur.execute("SELECT @token = %s", (param,)), SessionLostError)
    cur.execute(COUNT, (param,))
    maker = resilient_dbapi.creator(pymysql.connect, **login.kwargs)
    w.look(conn, cur, conn.stats, maker, conn._connector)
    conn.close()
    w.look(conn, cur)
    assert {Reconnected, Retrying, OutcomeUnknown} <= w.kinds()
    assert w.warnings() >= 3
    w.assert_clean(login.password, param)


@pytest.mark.server
def test_no_secret_after_idle_timeout(login: Login, caplog: pytest.LogCaptureFixture) -> None:
    """The server closes idle sessions: the default proxy replaces its connection before
    sending; a bare proxy (no policies) finds out inside a transaction with writes."""
    param = _token("param")
    w = Witness(caplog)
    conn = resilient_dbapi.connect(
        pymysql.connect, **login.kwargs, autocommit=True, listeners=[w.listener]
    )
    bare = resilient_dbapi.connect(
        pymysql.connect, **login.kwargs, autocommit=True, policies=[], listeners=[w.listener]
    )
    for c in (conn, bare):
        c.cursor().execute("SET SESSION wait_timeout = 1")
    bare_cur = bare.cursor()
    bare.begin()
    bare_cur.execute(INSERT, (param,))
    time.sleep(1.5)
    cur = conn.cursor()
    cur.execute(COUNT, (param,))
    assert conn.reconnects == 1
    w.expect(lambda: bare_cur.execute(INSERT, (param,)), TransactionLostError)
    w.expect(lambda: bare.commit(), TransactionLostError)
    bare.rollback()
    bare_cur.execute(INSERT, (param,))
    w.look(conn, bare, cur, bare_cur, conn.stats, bare.stats)
    conn.close()
    bare.close()
    assert Reconnected in w.kinds()
    w.assert_clean(login.password, param)


@pytest.mark.server
@pytest.mark.parametrize("driver", ["pymysql", "mysqlclient"])
def test_no_secret_when_connecting_fails(
    login: Login, caplog: pytest.LogCaptureFixture, driver: str
) -> None:
    """Connection refused until the retry policy gives up (with connect() and with a
    creator()), and a wrong password (never retried)."""
    connect = pymysql.connect if driver == "pymysql" else MySQLdb.connect
    wrong = _token("wrong-pw")
    w = Witness(caplog)
    policies = [RetryOnError(attempts=3, deadline=2.0, backoff=0.01)]
    refused = {**login.kwargs, "port": free_port(), "connect_timeout": 1}
    w.expect(
        lambda: resilient_dbapi.connect(
            connect, **refused, policies=policies, listeners=[w.listener]
        ),
        MySQLdb.OperationalError,
        pymysql.err.OperationalError,
    )
    maker = resilient_dbapi.creator(connect, **refused, policies=policies, listeners=[w.listener])
    w.look(maker)
    w.expect(maker, MySQLdb.OperationalError, pymysql.err.OperationalError)
    assert {Retrying, GaveUp} <= w.kinds()
    retries = len(w.events)
    denied = {**login.kwargs, "password": wrong}
    exc = w.expect(
        lambda: resilient_dbapi.connect(connect, **denied, listeners=[w.listener]),
        MySQLdb.OperationalError,
        pymysql.err.OperationalError,
    )
    assert exc.args[0] == 1045
    assert len(w.events) == retries  # access denied is never retried
    w.assert_clean(login.password, wrong)


def _set_password(server: Any, user: str, password: str) -> None:
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute(f"ALTER USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
    admin.close()


@pytest.mark.server
def test_no_secret_when_the_password_changed_before_a_reconnect(
    server: Any, login: Login, caplog: pytest.LogCaptureFixture
) -> None:
    param, new_password = _token("param"), _token("new-pw")
    w = Witness(caplog)
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **login.kwargs,
        autocommit=True,
        policies=[PingOnCheckout(), RetryOnError(attempts=3, deadline=2.0, backoff=0.01)],
        listeners=[w.listener],
    )
    cur = conn.cursor()
    _set_password(server, login.user, new_password)
    kill(server, conn.thread_id())
    time.sleep(0.6)
    exc = w.expect(lambda: cur.execute(COUNT, (param,)), pymysql.err.OperationalError)
    assert exc.args[0] == 1045
    w.expect(lambda: cur.execute(INSERT, (param,)), pymysql.err.OperationalError)
    w.look(conn, cur, conn.stats)
    conn.close()
    w.assert_clean(login.password, new_password, param)


@pytest.mark.server
def test_no_secret_from_the_credentials_callable(
    server: Any, login: Login, caplog: pytest.LogCaptureFixture
) -> None:
    """The passwords ``credentials=`` hands out, the one that works and a stale one the
    server refuses, appear nowhere."""
    param, new_password, stale = _token("param"), _token("new-pw"), _token("stale")
    handed = [login.password]
    w = Witness(caplog)
    given = {**login.kwargs, "password": _token("never-used")}
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **given,
        autocommit=True,
        credentials=lambda arguments: {"password": handed[-1]},
        listeners=[w.listener],
    )
    cur = conn.cursor()
    _set_password(server, login.user, new_password)
    handed.append(new_password)
    kill(server, conn.thread_id())
    cur.execute(COUNT, (param,))  # reconnected with the new password
    handed.append(stale)
    kill(server, conn.thread_id())
    exc = w.expect(lambda: cur.execute(COUNT, (param,)), pymysql.err.OperationalError)
    assert exc.args[0] == 1045
    w.look(conn, cur, conn.stats, conn._connector)
    conn.close()
    assert Reconnected in w.kinds()
    w.assert_clean(login.password, new_password, stale, given["password"], param)


@pytest.mark.server
def test_no_secret_when_the_server_stays_down_past_the_deadline(
    own_server: MariaDBServer, caplog: pytest.LogCaptureFixture
) -> None:
    user, password, param = f"sec_{secrets.token_hex(4)}", _token("pw"), _token("param")
    admin = own_server.admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
    admin.close()
    w = Witness(caplog)
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **own_server.connect_kwargs(user=user, password=password, connect_timeout=1),
        policies=[PingOnCheckout(), RetryOnError(deadline=0.5, backoff=0.05)],
        listeners=[w.listener],
    )
    cur = conn.cursor()
    own_server.stop()
    time.sleep(0.6)
    w.expect(lambda: cur.execute("SELECT %s", (param,)), pymysql.err.OperationalError)
    w.expect(lambda: cur.execute("DO %s", (param,)), pymysql.err.OperationalError)
    w.look(conn, cur, conn.stats)
    conn.close()
    assert GaveUp in w.kinds()
    w.assert_clean(password, param)


@pytest.mark.server
def test_no_secret_after_a_blackhole_or_a_cut(
    proxy: FaultProxy, login: Login, caplog: pytest.LogCaptureFixture
) -> None:
    """A half-open connection found by the ping (replaced), one with a write in flight
    (the read timeout: OutcomeUnknownError), and a write whose reply never comes back."""
    param = _token("param")
    w = Witness(caplog)
    conn = resilient_dbapi.connect(
        pymysql.connect,
        **{**login.kwargs, "host": "127.0.0.1", "port": proxy.port},
        autocommit=True,
        read_timeout=1.0,
        policies=[PingOnCheckout(idle=0.2, timeout=0.5, skip_recent=0.1), RetryOnError()],
        listeners=[w.listener],
    )
    cur = conn.cursor()
    cur.execute("SELECT 1")
    proxy.blackhole()
    time.sleep(0.3)
    cur.execute(COUNT, (param,))  # the ping times out: replaced before sending
    assert any(isinstance(e, Pinged) and not e.ok for e in w.events)
    proxy.blackhole()
    w.expect(lambda: cur.execute(INSERT, (param,)), OutcomeUnknownError)
    proxy.cut_after(param.encode())
    w.expect(lambda: cur.execute(INSERT, (param,)), OutcomeUnknownError)
    assert proxy.cuts == 1
    w.look(conn, cur, conn.stats)
    conn.close()
    w.assert_clean(login.password, param)


def _aio_kwargs(kwargs: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    kwargs = {**kwargs, **overrides}
    if "database" in kwargs:
        kwargs["db"] = kwargs.pop("database")
    return kwargs


@pytest.mark.server
def test_no_secret_asyncio(server: Any, login: Login, caplog: pytest.LogCaptureFixture) -> None:
    param = _token("param")
    w = Witness(caplog)

    async def story() -> None:
        conn = await aio.connect(
            aiomysql.connect, **_aio_kwargs(login.kwargs, autocommit=True), listeners=[w.listener]
        )
        cur = await conn.cursor()
        await cur.execute(COUNT, (param,))
        kill(server, conn.thread_id())
        await cur.execute(COUNT, (param,))  # a read, sent again
        with killed_in_flight(server, conn.thread_id()), pytest.raises(OutcomeUnknownError) as info:
            await cur.execute(SLEEP_WRITE, (param, param))
        w.error(info.value)
        w.look(conn, cur, conn.stats)
        conn.close()
        with pytest.raises(pymysql.err.OperationalError) as refused:
            await aio.connect(
                aiomysql.connect,
                **_aio_kwargs(login.kwargs, port=free_port(), connect_timeout=1),
                policies=[RetryOnError(attempts=2, deadline=1.0, backoff=0.01)],
                listeners=[w.listener],
            )
        w.error(refused.value)

    asyncio.run(story())
    assert {Reconnected, OutcomeUnknown, GaveUp} <= w.kinds()
    w.assert_clean(login.password, param)
