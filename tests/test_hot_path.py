"""The hot path's shortcuts decide exactly what the general rules decide, and skip only
what they claim to skip. Engine and scripted fake driver: no server."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import resilient_dbapi
from resilient_dbapi import MaxAge, PingOnCheckout, RetryOnError, adapters
from resilient_dbapi.adapters import Liveness
from resilient_dbapi.engine import Engine
from resilient_dbapi.statements import Statement, statement

from .fakedriver import FakeAdapter, FakeConnection, FakeCursor, FakeServer
from .test_engine import engine

# Steady statements (reads and writes that neither begin nor end a transaction) and,
# for contrast, some that are not.
TEXTS = [
    "SELECT 1",
    "SELECT * FROM t WHERE id = 1 FOR UPDATE",
    "UPDATE t SET v = 1 WHERE id = 2",
    "INSERT INTO t (uid) VALUES ('x')",
    "DELETE FROM t",
    "SET @a = 1",  # a user variable: a write by kind (session state no replay rebuilds)
    "SET time_zone = '+00:00'",
    "BEGIN",
    "COMMIT",
    "CREATE TABLE u (a INT)",
    "CALL p()",
]


def _state(e: Engine) -> dict[str, Any]:
    names = [n for n in type(e).__slots__ if not n.startswith("__")]
    shared = ("draw", "errors", "facts", "tls_floor", "failover")  # objects of their own
    return {n: copy.copy(getattr(e, n, None)) for n in names if n not in shared}


def _general(stmt: Statement) -> Statement:
    """The same record with the shortcut's flag cleared: the general rules decide it."""
    copied = copy.copy(stmt)
    object.__setattr__(copied, "steady", False)
    return copied


@given(
    text=st.sampled_from(TEXTS),
    txn_writes=st.booleans(),
    explicit=st.booleans(),
    sticky=st.booleans(),
    kept=st.booleans(),
    xa_open=st.booleans(),
    says_transaction=st.booleans(),
    in_trans=st.booleans(),
    autocommit=st.booleans(),
)
def test_done_decides_what_the_general_rules_decide(
    text: str,
    txn_writes: bool,
    explicit: bool,
    sticky: bool,
    kept: bool,
    xa_open: bool,
    says_transaction: bool,
    in_trans: bool,
    autocommit: bool,
) -> None:
    stmt = statement(text)
    states = []
    for record in (stmt, _general(stmt)):
        e = engine(all_roll_back=False)
        e.connected(100.0)
        # A state done() can meet: nothing open means neither BEGIN nor a write seen with
        # autocommit off; an XA branch and a kept write may outlive the rest (a
        # transaction the server rolled back on a live connection leaves them).
        e.txn_writes = txn_writes
        e.explicit, e.sticky = explicit and txn_writes, sticky and txn_writes
        e.kept, e.xa_open = kept, xa_open
        e.says_transaction = says_transaction
        e.done(record, in_trans, autocommit, 101.0)
        states.append(_state(e))
    assert states[0] == states[1]


def test_the_statements_the_shortcut_takes() -> None:
    steady = {text: statement(text).steady for text in TEXTS}
    assert [t for t, s in steady.items() if s] == TEXTS[:6]
    assert statement("BEGIN").resendable and statement("SET time_zone = '+00:00'").resendable
    assert not statement("INSERT INTO t (uid) VALUES ('x')").resendable


class _CountingAdapter(FakeAdapter):
    name = "fake-counting"
    probes = 0

    def owns(self, raw: object) -> bool:
        return isinstance(raw, _CountedConnection)

    def probe(self, raw: FakeConnection) -> Callable[[], Liveness]:
        check = super().probe(raw)

        def counted() -> Liveness:
            _CountingAdapter.probes += 1
            return check()

        return counted

    def execute(self, raw: FakeConnection, query: str, args: Any) -> None:
        _CountedCursor(raw).execute(query, args)


class _CountedCursor(FakeCursor):
    def execute(self, query: str, args: Any = None) -> int:
        conn = self.conn
        if query == "BEGIN":
            conn.begin()
        elif query == "COMMIT":
            conn.commit()
        elif query.startswith("SET"):
            conn.command(lambda: None)
        else:
            return FakeCursor.execute(self, query, args)
        return 0


class _CountedConnection(FakeConnection):
    def cursor(self, cursor_class: Any = None) -> FakeCursor:
        return _CountedCursor(self)


def test_what_may_be_sent_again_skips_the_socket_check_inside_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside the skip window, a read, ``BEGIN`` and a setting go out without a socket
    check (lost in flight, each is sent again); a write outside a transaction never
    does. Found dead by its send, ``BEGIN`` is sent again on a new connection."""
    server = FakeServer()

    def connect(autocommit: bool = True) -> _CountedConnection:
        conn = _CountedConnection(server, autocommit)
        server.connections.append(conn)
        server.connects += 1
        return conn

    policies = [PingOnCheckout(idle=120.0, skip_recent=60.0), MaxAge(), RetryOnError()]
    # First, for this test only (another test's fake adapter claims these connections too).
    monkeypatch.setattr(adapters, "_registry", [_CountingAdapter(), *adapters._registry])
    conn = resilient_dbapi.connect(connect, policies=policies)
    assert type(conn._adapter) is _CountingAdapter
    cur = conn.cursor()
    cur.execute("SELECT 1")
    counted = {}
    insert = "INSERT INTO t (uid) VALUES (%s)"
    for text in ("SELECT 1", "BEGIN", "COMMIT", "SET time_zone = 'UTC'", insert):
        before = _CountingAdapter.probes
        cur.execute(text, ("a",) if text == insert else None)
        counted[text] = _CountingAdapter.probes - before
    assert counted == {
        "SELECT 1": 0,
        "BEGIN": 0,
        "COMMIT": 0,  # inside the transaction: its end is checked by the commit rules
        "SET time_zone = 'UTC'": 0,
        insert: 1,
    }
    server.fault = "after_send"  # the connection dies with BEGIN in flight
    cur.execute("BEGIN")
    cur.execute(insert, ("b",))
    conn.commit()
    assert conn.reconnects == 1 and server.connects == 2
    assert server.committed == ["a", "b"]
    conn.close()
