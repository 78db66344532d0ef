"""A hypothesis state machine against the real server: autocommit writes, transactions,
commits, rollbacks and reads on resilient connections, with kills injected at random
between them. After every step the table must hold exactly the writes acknowledged, plus
any of those reported of unknown outcome (once at most), and nothing else; a plain read
never fails. The example count is bounded so that CI stays fast."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any, ClassVar

import pymysql
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

import resilient_dbapi
from resilient_dbapi import (
    MaxAge,
    OutcomeUnknownError,
    PingOnCheckout,
    RetryOnError,
    TransactionLostError,
)
from resilient_dbapi.testing import WriteLedger, kill_connection

pytestmark = pytest.mark.server

_tables = itertools.count(1)


class KillsAgainstTheServer(RuleBasedStateMachine):
    server: Any = None  # set by the test below
    database: str = ""
    seen: ClassVar[Counter[str]] = Counter()  # over all examples: the faults did happen

    @initialize(check_every_time=st.booleans())
    def open(self, check_every_time: bool) -> None:
        # With skip_recent=0 a kill is always found before sending; with the default a
        # statement right after a kill goes out on the dead socket: both paths matter.
        ping = PingOnCheckout(skip_recent=0) if check_every_time else PingOnCheckout()
        kwargs = self.server.connect_kwargs(database=self.database)
        self.table = f"s{next(_tables)}"
        self.admin = self.server.admin(database=self.database)
        with self.admin.cursor() as cur:
            cur.execute(f"CREATE TABLE {self.table} (uid VARCHAR(32) NOT NULL)")
        policies = [ping, MaxAge(), RetryOnError()]
        self.auto = resilient_dbapi.connect(
            pymysql.connect, **kwargs, autocommit=True, policies=policies
        )
        self.txn = resilient_dbapi.connect(pymysql.connect, **kwargs, policies=policies)
        self.seen["examples"] += 1
        self.ledger = WriteLedger()
        self.pending: list[str] = []

    def teardown(self) -> None:
        for name in ("auto", "txn", "admin"):
            conn = getattr(self, name, None)
            if conn is not None:
                conn.close()

    def _insert(self) -> str:
        return f"INSERT INTO {self.table} (uid) VALUES (%s)"

    @rule()
    def autocommit_write(self) -> None:
        uid = self.ledger.new_id()
        try:
            self.auto.cursor().execute(self._insert(), (uid,))
        except OutcomeUnknownError:
            self.seen["outcome unknown"] += 1
            self.ledger.outcome_unknown([uid])
        else:
            self.ledger.acknowledge([uid])

    @rule()
    def write_in_transaction(self) -> None:
        uid = self.ledger.new_id()
        try:
            self.txn.cursor().execute(self._insert(), (uid,))
        except TransactionLostError:
            self._lost(uid)
        else:
            self.pending.append(uid)

    @rule()
    def commit(self) -> None:
        try:
            self.txn.commit()
        except OutcomeUnknownError:
            self.ledger.outcome_unknown(self.pending)
            self.pending = []
        except TransactionLostError:
            self._lost()
        else:
            self.ledger.acknowledge(self.pending)
            self.pending = []

    @rule()
    def rollback(self) -> None:
        self.txn.rollback()
        self.ledger.rolled_back_ids(self.pending)
        self.pending = []

    @rule()
    def read(self) -> None:
        cur = self.auto.cursor()
        cur.execute(f"SELECT COUNT(*) FROM {self.table}")  # never fails: sent again
        assert cur.fetchall()[0][0] >= 0

    @rule(which=st.sampled_from(["auto", "txn"]))
    def kill(self, which: str) -> None:
        kill_connection(self.admin, getattr(self, which).thread_id())
        self.seen["kills"] += 1

    def _lost(self, *also: str) -> None:
        self.seen["transaction lost"] += 1
        self.ledger.rolled_back_ids([*self.pending, *also])
        self.pending = []
        self.txn.rollback()

    @invariant()
    def the_table_holds_what_was_acknowledged(self) -> None:
        if not hasattr(self, "admin"):
            return
        with self.admin.cursor() as cur:
            cur.execute(f"SELECT uid FROM {self.table}")
            stored = [row[0] for row in cur.fetchall()]
        check = self.ledger.check(stored)
        assert check.ok, check


def test_writes_under_random_kills_against_the_server(
    server: Any, db: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("ERROR", logger="resilient_dbapi")
    KillsAgainstTheServer.server = server
    KillsAgainstTheServer.database = db["database"]
    run_state_machine_as_test(
        KillsAgainstTheServer,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,  # the same sequences every run: a failure is reproducible
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    seen = KillsAgainstTheServer.seen
    # The faults did strike: kills, and work they cost (whatever the sequences drawn).
    assert seen["kills"] >= 10, seen
    assert seen["transaction lost"] + seen["outcome unknown"] >= 1, seen
