"""Property test: the proxy and its engine, driven against the scripted fake driver with
disconnects injected before send, after send, in flight and while idle.

Invariants after every step: no write applied twice; every acknowledged write (and
commit) is on the server; nothing is on the server that was neither acknowledged nor
reported as of unknown outcome; every failure surfaced as an error of the driver's own
``OperationalError`` class, never swallowed.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import resilient_dbapi
from resilient_dbapi import (
    MaxAge,
    OutcomeUnknownError,
    PingOnCheckout,
    RetryOnError,
    TransactionLostError,
    adapters,
)

from .fakedriver import (
    AsyncFakeAdapter,
    FakeAdapter,
    FakeOperationalError,
    FakeServer,
    async_connect,
)

adapters.register(FakeAdapter())
adapters.register(AsyncFakeAdapter())  # tried first: its connections are FakeConnections too

POLICIES = [
    PingOnCheckout(skip_recent=0.0),
    MaxAge(follow_wait_timeout=False),
    RetryOnError(attempts=4, deadline=None, backoff=0.0, max_backoff=0.0),
]
FAULTS = ["before_send", "after_send", "lost_in_flight"]


class ProxyMachine(RuleBasedStateMachine):
    """Drives the sync proxy; :class:`AsyncProxyMachine` runs the same rules through the
    asyncio proxy."""

    def __init__(self) -> None:
        super().__init__()
        self.server = FakeServer()
        self.ids = itertools.count()
        self.acknowledged: set[str] = set()
        self.unknown: set[str] = set()
        self.in_txn: list[str] = []  # written in the open transaction, acknowledged
        self.lost = False
        self.uncertain = False  # ...with writes whose outcome is unknown

    @property
    def lost_error(self) -> type[Exception]:
        """What every operation raises until rollback() acknowledges the loss."""
        return OutcomeUnknownError if self.uncertain else TransactionLostError

    def do(self, method: Callable[..., Any], *args: Any) -> Any:
        """Call a proxy method (the async machine awaits it)."""
        return method(*args)

    @initialize(autocommit=st.booleans())
    def open(self, autocommit: bool) -> None:
        self.autocommit = autocommit
        self.conn = resilient_dbapi.connect(
            self.server.connect, autocommit=autocommit, policies=POLICIES
        )
        self.cursor = self.conn.cursor()
        self.explicit = False

    def _lost_transaction(self) -> None:
        self.in_txn = []
        self.explicit = False
        self.lost = True

    def _uncertain_transaction(self) -> None:
        self.unknown.update(self.in_txn)
        self._lost_transaction()
        self.uncertain = True

    @rule(fault=st.sampled_from(FAULTS))
    def schedule_fault(self, fault: str) -> None:
        self.server.fault = fault

    @rule()
    def kill_idle_connections(self) -> None:
        self.server.kill_idle()

    @rule(times=st.integers(1, 3))
    def refuse_next_connects(self, times: int) -> None:
        self.server.refuse_connects = times

    @rule()
    def begin(self) -> None:
        if self.lost:
            with pytest.raises(self.lost_error):
                self.do(self.conn.begin)
            return
        try:
            self.do(self.conn.begin)
        except TransactionLostError:
            self._lost_transaction()
        except OutcomeUnknownError:
            # BEGIN commits an open transaction first: it may or may not have happened.
            assert self.in_txn or self.explicit
            self._uncertain_transaction()
        except FakeOperationalError as exc:
            assert exc.args[0] in (2003, 2006, 2013)
        else:
            self.acknowledged.update(self.in_txn)  # committed by the BEGIN
            self.in_txn = []
            self.explicit = True

    @rule()
    def insert(self) -> None:
        uid = f"u{next(self.ids)}"
        if self.lost:
            with pytest.raises(self.lost_error):
                self.do(self.cursor.execute, "INSERT INTO t (uid) VALUES (%s)", (uid,))
            return
        transactional = self.explicit or not self.autocommit
        try:
            self.do(self.cursor.execute, "INSERT INTO t (uid) VALUES (%s)", (uid,))
        except OutcomeUnknownError as exc:
            assert isinstance(exc, FakeOperationalError)
            assert not transactional, "a write inside a transaction is lost, not unknown"
            self.unknown.add(uid)
        except TransactionLostError as exc:
            assert isinstance(exc, FakeOperationalError)
            assert transactional
            self._lost_transaction()
        except FakeOperationalError as exc:
            assert exc.args[0] == 2003  # connecting gave up
        else:
            if transactional:
                self.in_txn.append(uid)
            else:
                self.acknowledged.add(uid)

    @rule()
    def select(self) -> None:
        if self.lost:
            with pytest.raises(self.lost_error):
                self.do(self.cursor.execute, "SELECT COUNT(*) FROM t")
            return
        try:
            self.do(self.cursor.execute, "SELECT COUNT(*) FROM t")
        except TransactionLostError:
            assert self.in_txn or self.explicit
            self._lost_transaction()
            return
        except FakeOperationalError as exc:
            assert exc.args[0] in (2003, 2013)  # gave up connecting / resends used up
            return
        (count,) = self.do(self.cursor.fetchone)
        low = len(self.acknowledged) + len(self.in_txn)
        assert low <= count <= low + len(self.unknown)

    @rule()
    def commit(self) -> None:
        if self.lost:
            with pytest.raises(self.lost_error):
                self.do(self.conn.commit)
            return
        try:
            self.do(self.conn.commit)
        except OutcomeUnknownError:
            assert self.in_txn or self.explicit
            self._uncertain_transaction()
        except TransactionLostError:
            self._lost_transaction()
        else:
            self.acknowledged.update(self.in_txn)
            self.in_txn = []
            self.explicit = False

    @rule()
    def rollback(self) -> None:
        self.do(self.conn.rollback)  # never fails: a dead connection rolled back already
        self.in_txn = []
        self.explicit = False
        self.lost = self.uncertain = False

    @invariant()
    def nothing_twice(self) -> None:
        committed = self.server.committed
        assert len(committed) == len(set(committed)), "a write was applied twice"

    @invariant()
    def nothing_lost_nothing_invented(self) -> None:
        committed = set(self.server.committed)
        assert self.acknowledged <= committed, "an acknowledged write is missing"
        assert committed <= self.acknowledged | self.unknown, "an unreported write"


class AsyncProxyMachine(ProxyMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()

    def do(self, method: Callable[..., Any], *args: Any) -> Any:
        return self.loop.run_until_complete(method(*args))

    @initialize(autocommit=st.booleans())
    def open(self, autocommit: bool) -> None:
        self.autocommit = autocommit
        self.conn = self.loop.run_until_complete(
            resilient_dbapi.aio.connect(
                functools.partial(async_connect, self.server), autocommit, policies=POLICIES
            )
        )
        self.cursor = self.loop.run_until_complete(self.conn.cursor())
        self.explicit = False

    def teardown(self) -> None:
        self.loop.close()


SETTINGS = settings(max_examples=150, stateful_step_count=40, deadline=None)
ProxyMachine.TestCase.settings = SETTINGS
AsyncProxyMachine.TestCase.settings = SETTINGS
TestProxyMachine = ProxyMachine.TestCase
TestAsyncProxyMachine = AsyncProxyMachine.TestCase
