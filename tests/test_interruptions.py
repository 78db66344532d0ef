"""An interruption (KeyboardInterrupt, or a cancellation in the asyncio proxy) in the
middle of a round trip the proxy makes on its own leaves the connection abandoned, never
reused with a reply still on its way. Scripted fake driver: the engine's unit tests."""

from __future__ import annotations

from typing import Any

import pytest

import resilient_dbapi
from resilient_dbapi import MaxAge, PingOnCheckout, RetryOnError, adapters

from .fakedriver import FakeAdapter, FakeConnection, FakeCursor, FakeServer


class _SettingCursor(FakeCursor):
    def execute(self, query: str, args: Any = None) -> int:
        if query.startswith("SET"):
            return int(self.conn.command(lambda: 0))
        return FakeCursor.execute(self, query, args)


class _SettingConnection(FakeConnection):
    interrupt_wait_timeout = False

    def cursor(self, cursor_class: Any = None) -> FakeCursor:
        return _SettingCursor(self)


class _InterruptingAdapter(FakeAdapter):
    name = "fake-interrupting"

    def owns(self, raw: object) -> bool:
        return isinstance(raw, _SettingConnection)

    def execute(self, raw: FakeConnection, query: str, args: Any) -> None:
        _SettingCursor(raw).execute(query, args)

    def wait_timeout(self, raw: FakeConnection) -> float | None:
        if _SettingConnection.interrupt_wait_timeout:
            raise KeyboardInterrupt  # the reply to SELECT @@wait_timeout is still coming
        return 600.0


adapters.register(_InterruptingAdapter())


def test_interrupted_wait_timeout_read_abandons_the_connection() -> None:
    server = FakeServer()
    made: list[_SettingConnection] = []

    def connect(autocommit: bool = False) -> _SettingConnection:
        conn = _SettingConnection(server, autocommit)
        made.append(conn)
        return conn

    policies = [PingOnCheckout(skip_recent=0.0), MaxAge(follow_wait_timeout=True), RetryOnError()]
    conn = resilient_dbapi.connect(connect, True, policies=policies)
    cur = conn.cursor()
    _SettingConnection.interrupt_wait_timeout = True
    try:
        with pytest.raises(KeyboardInterrupt):
            cur.execute("SET SESSION wait_timeout = 600")
    finally:
        _SettingConnection.interrupt_wait_timeout = False
    assert not made[0].alive  # given up: its protocol state is unknown
    cur.execute("SELECT COUNT(*) FROM t")
    assert cur.fetchone() == (0,)
    assert len(made) == 2  # the statement went to a new connection
