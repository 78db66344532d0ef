"""Unit tests of the sans-IO engine: decisions from facts, no server, no clock."""

from __future__ import annotations

import pytest

from resilient_dbapi import MYSQL_ERRORS, ErrorKind, MaxAge, PingOnCheckout, RetryOnError
from resilient_dbapi.engine import Checkout, Engine, Op, Reason, Verdict
from resilient_dbapi.statements import StatementKind as K

DEAD = ErrorKind.DEAD


def engine(*policies: object, draw: float = 0.0) -> Engine:
    e = Engine(
        policies or [PingOnCheckout(), MaxAge(), RetryOnError()],  # type: ignore[arg-type]
        MYSQL_ERRORS,
        draw=lambda: draw,
    )
    e.connected(100.0, wait_timeout=None)
    return e


def test_checkout_proceeds_when_fresh() -> None:
    e = engine()
    assert e.checkout(101.0) == Checkout()


def test_ping_after_idle() -> None:
    e = engine(PingOnCheckout(idle=30, timeout=2))
    assert e.next_check_at == 130.0
    assert e.checkout(131.0) == Checkout(ping_timeout=2.0)
    e.done(K.READ, False, True, 131.0)
    assert e.next_check_at == 161.0


def test_max_age_with_jitter_drawn_at_connect() -> None:
    e = engine(MaxAge(seconds=100, jitter=0.1), draw=0.5)  # lifetime 95 s
    assert e.checkout(194.0) == Checkout()
    assert e.checkout(195.0) == Checkout(reconnect=Reason.MAX_AGE)


def test_follows_wait_timeout() -> None:
    e = Engine([MaxAge()], MYSQL_ERRORS)
    e.connected(0.0, wait_timeout=60)  # reconnect after 54 s idle, before the server's 60
    assert e.checkout(53.0) == Checkout()
    assert e.checkout(54.0) == Checkout(reconnect=Reason.IDLE)


def test_stale_connection_is_replaced_first() -> None:
    e = engine()
    e.must_replace(Reason.LIVENESS)
    assert e.checkout(100.5) == Checkout(reconnect=Reason.LIVENESS)


@pytest.mark.parametrize(
    ("op", "kind", "sent", "autocommit", "expected"),
    [
        (Op.EXECUTE, K.READ, True, True, Verdict.RESEND),
        (Op.EXECUTE, K.READ, True, False, Verdict.RESEND),
        (Op.EXECUTE, K.SESSION, True, False, Verdict.RESEND),
        (Op.EXECUTE, K.WRITE, False, True, Verdict.RESEND),
        (Op.EXECUTE, K.WRITE, False, False, Verdict.RESEND),
        (Op.EXECUTE, K.WRITE, True, True, Verdict.OUTCOME_UNKNOWN),
        (Op.EXECUTE, K.WRITE, True, False, Verdict.TRANSACTION_LOST),
        (Op.EXECUTEMANY, K.WRITE, False, True, Verdict.OUTCOME_UNKNOWN),
        (Op.CALLPROC, K.WRITE, True, True, Verdict.OUTCOME_UNKNOWN),
        (Op.FETCH, K.READ, True, True, Verdict.RAISE),
        (Op.COMMIT, K.COMMIT, True, False, Verdict.RECOVERED),  # nothing was written
        (Op.ROLLBACK, K.ROLLBACK, True, False, Verdict.RECOVERED),
    ],
)
def test_verdicts_outside_a_transaction(
    op: Op, kind: K, sent: bool, autocommit: bool, expected: Verdict
) -> None:
    e = engine()
    assert e.failed(op, kind, DEAD, sent=sent, autocommit=autocommit, resends=0) is expected
    assert e.stale


@pytest.mark.parametrize(
    ("op", "kind", "sent", "expected"),
    [
        (Op.EXECUTE, K.READ, False, Verdict.TRANSACTION_LOST),
        (Op.EXECUTE, K.READ, True, Verdict.TRANSACTION_LOST),
        (Op.EXECUTE, K.WRITE, True, Verdict.TRANSACTION_LOST),
        (Op.COMMIT, K.COMMIT, True, Verdict.OUTCOME_UNKNOWN),
        (Op.COMMIT, K.COMMIT, False, Verdict.TRANSACTION_LOST),
        (Op.ROLLBACK, K.ROLLBACK, True, Verdict.RECOVERED),
    ],
)
def test_verdicts_inside_a_transaction_with_writes(
    op: Op, kind: K, sent: bool, expected: Verdict
) -> None:
    e = engine()
    e.done(K.WRITE, True, False, 100.1)
    assert e.txn_writes
    verdict = e.failed(op, kind, DEAD, sent=sent, autocommit=False, resends=0)
    assert verdict is expected
    assert e.lost is (expected is Verdict.TRANSACTION_LOST)


def test_lost_until_rolled_back() -> None:
    e = engine()
    e.done(K.BEGIN, True, True, 100.1)
    e.failed(Op.EXECUTE, K.READ, DEAD, sent=True, autocommit=True, resends=0, code=2013)
    assert e.lost and e.lost_code == 2013
    e.rolled_back()
    assert not e.lost and not e.txn_writes


def test_resends_are_bounded() -> None:
    e = engine(RetryOnError(resend=2))
    kw = {"sent": True, "autocommit": True}
    assert e.failed(Op.EXECUTE, K.READ, DEAD, resends=1, **kw) is Verdict.RESEND
    assert e.failed(Op.EXECUTE, K.READ, DEAD, resends=2, **kw) is Verdict.RAISE


def test_no_retry_policy_never_resends() -> None:
    e = engine(PingOnCheckout())
    assert (
        e.failed(Op.EXECUTE, K.READ, DEAD, sent=False, autocommit=True, resends=0) is Verdict.RAISE
    )
    assert e.connect_failed(ErrorKind.CONNECT_TRANSIENT, 1, 0.0) is None


@pytest.mark.parametrize(
    "error", [ErrorKind.OTHER, ErrorKind.STATEMENT_ABORTED, ErrorKind.READ_ONLY]
)
def test_other_errors_pass_through_and_keep_the_connection(error: ErrorKind) -> None:
    e = engine()
    assert (
        e.failed(Op.EXECUTE, K.WRITE, error, sent=True, autocommit=True, resends=0) is Verdict.RAISE
    )
    assert not e.stale


def test_deadlock_ends_the_transaction() -> None:
    e = engine()
    e.done(K.WRITE, True, False, 100.1)
    verdict = e.failed(
        Op.EXECUTE,
        K.WRITE,
        ErrorKind.TRANSACTION_ROLLED_BACK,
        sent=True,
        autocommit=False,
        resends=0,
    )
    assert verdict is Verdict.RAISE
    assert not e.txn_writes and not e.stale


def test_transaction_tracking() -> None:
    e = engine()
    e.done(K.READ, False, False, 100.1)
    assert not e.txn_writes  # reads with autocommit off: still recoverable
    e.done(K.WRITE, False, False, 100.2)  # a lock or write the server flag may not show
    assert e.txn_writes
    e.done(K.COMMIT, False, False, 100.3)
    assert not e.txn_writes
    e.done(K.BEGIN, True, True, 100.4)
    e.done(K.READ, True, True, 100.5)
    assert e.txn_writes
    e.done(K.ROLLBACK, False, True, 100.6)
    assert not e.txn_writes
    e.done(K.WRITE, False, True, 100.7)  # autocommit: committed by itself
    assert not e.txn_writes


def test_connect_retry_waits_and_gives_up() -> None:
    e = engine(RetryOnError(attempts=3, deadline=None, backoff=0.1, max_backoff=1.0))
    first = e.connect_failed(ErrorKind.CONNECT_TRANSIENT, 1, 0.0)
    assert first is not None and 0.1 <= first <= 0.2
    assert e.connect_failed(ErrorKind.CONNECT_TRANSIENT, 3, 1.0) is None
    assert e.connect_failed(ErrorKind.CONNECT_FATAL, 1, 0.0) is None


def test_connect_retry_respects_the_deadline() -> None:
    # Each wait is 0.25 s plus up to 0.25 s of jitter: no retry may end past the deadline.
    e = engine(RetryOnError(attempts=None, deadline=1.0, backoff=0.25, max_backoff=0.25))
    for _ in range(50):
        wait = e.connect_failed(ErrorKind.CONNECT_TRANSIENT, 1, 0.4)
        assert wait is not None and 0.25 <= wait <= 0.5
        assert e.connect_failed(ErrorKind.CONNECT_TRANSIENT, 2, 0.76) is None


def test_policies_are_checked() -> None:
    with pytest.raises(TypeError, match="not a policy"):
        Engine(["ping"], MYSQL_ERRORS)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="more than one MaxAge"):
        Engine([MaxAge(), MaxAge()], MYSQL_ERRORS)


def test_next_check_is_brought_up_to_date_after_fast_reads() -> None:
    e = engine(PingOnCheckout(idle=30, timeout=2))
    e.last_used = 125.0  # what the proxy's hot path records after a plain read
    assert e.next_check_at == 130.0  # stale lower bound: the slow path runs ...
    assert e.checkout(131.0) == Checkout()  # ... finds the connection used 6 s ago ...
    assert e.next_check_at == 155.0  # ... and moves the next check on
    assert e.checkout(156.0) == Checkout(ping_timeout=2.0)


def _with_writes() -> Engine:
    e = engine()
    e.done(K.WRITE, True, False, 100.1)
    return e


def test_commit_sent_as_a_statement_is_outcome_unknown() -> None:
    kw = {"autocommit": False, "resends": 0}
    assert _with_writes().failed(Op.EXECUTE, K.COMMIT, DEAD, sent=True, **kw) is (
        Verdict.OUTCOME_UNKNOWN
    )
    assert _with_writes().failed(Op.EXECUTE, K.COMMIT, DEAD, sent=False, **kw) is (
        Verdict.TRANSACTION_LOST
    )
    assert engine().failed(Op.EXECUTE, K.COMMIT, DEAD, sent=True, **kw) is Verdict.RECOVERED
    assert _with_writes().failed(Op.EXECUTE, K.ROLLBACK, DEAD, sent=True, **kw) is (
        Verdict.RECOVERED
    )


@pytest.mark.parametrize(
    ("kind", "commits"), [(K.WRITE, True), (K.WRITE, None), (K.BEGIN, False), (K.SESSION, True)]
)
def test_a_statement_that_commits_implicitly_is_outcome_unknown(
    kind: K, commits: bool | None
) -> None:
    """DDL, LOCK TABLES, BEGIN, SET autocommit=1 commit the open transaction first."""
    verdict = _with_writes().failed(
        Op.EXECUTE, kind, DEAD, sent=True, autocommit=False, resends=0, commits=commits
    )
    assert verdict is Verdict.OUTCOME_UNKNOWN


def test_an_implicit_commit_ends_the_tracked_transaction() -> None:
    e = engine()
    e.done(K.BEGIN, True, True, 100.1)
    e.done(K.WRITE, True, True, 100.2)
    e.done(K.WRITE, False, True, 100.3, commits=True)  # CREATE TABLE: committed
    assert not e.txn_writes and not e.explicit


def test_a_failed_write_may_have_written_part_way() -> None:
    e = engine()
    verdict = e.failed(
        Op.EXECUTEMANY, K.WRITE, ErrorKind.OTHER, sent=True, autocommit=False, resends=0
    )
    assert verdict is Verdict.RAISE and e.txn_writes  # a later loss is not "recovered"
    assert (
        e.failed(Op.COMMIT, K.COMMIT, DEAD, sent=True, autocommit=False, resends=0)
        is Verdict.OUTCOME_UNKNOWN
    )
    e = engine()
    e.failed(Op.EXECUTE, K.WRITE, ErrorKind.OTHER, sent=True, autocommit=True, resends=0)
    assert not e.txn_writes
