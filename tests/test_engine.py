"""Unit tests of the sans-IO engine: decisions from facts, no server, no clock."""

from __future__ import annotations

import pymysql
import pytest

from resilient_dbapi import MYSQL_ERRORS, ErrorKind, MaxAge, PingOnCheckout, RetryOnError, adapters
from resilient_dbapi._connector import ConnectorBase, connect_failure
from resilient_dbapi._error_factories import tls_downgrade_error
from resilient_dbapi.engine import Checkout, Engine, Op, Reason, TLSFloor, Verdict
from resilient_dbapi.events import Observer
from resilient_dbapi.hosts import Failover, HostMemory
from resilient_dbapi.statements import Statement, session_key, statement
from resilient_dbapi.statements import StatementKind as K

from .engine_calls import S, fail

DEAD = ErrorKind.DEAD


def engine(*policies: object, draw: float = 0.0, all_roll_back: bool = True) -> Engine:
    """An engine on a connection; ``all_roll_back``: a server whose every table rolls
    back (the verdict tables below), else one that reports writes it cannot (MariaDB)."""
    e = Engine(
        policies or [PingOnCheckout(), MaxAge(), RetryOnError()],  # type: ignore[arg-type]
        MYSQL_ERRORS,
        draw=lambda: draw,
    )
    e.tracking(True, all_roll_back)
    e.connected(100.0, wait_timeout=None)
    return e


def test_checkout_proceeds_when_fresh() -> None:
    e = engine()
    assert e.checkout(101.0) == Checkout()


def test_ping_after_idle() -> None:
    e = engine(PingOnCheckout(idle=30, timeout=2))
    assert e.next_check_at == 130.0
    assert e.checkout(131.0) == Checkout(ping_timeout=2.0)
    e.done(S(K.READ), False, True, 131.0)
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
    assert fail(e, op, kind, DEAD, sent=sent, autocommit=autocommit, resends=0) is expected
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
    e.done(S(K.WRITE), True, False, 100.1)
    assert e.txn_writes
    verdict = fail(e, op, kind, DEAD, sent=sent, autocommit=False, resends=0)
    assert verdict is expected
    # Lost or uncertain, the transaction must be acknowledged with rollback(); an
    # uncertain one never reads as rolled back.
    assert e.lost is (expected is not Verdict.RECOVERED)
    assert e.lost_uncertain is (expected is Verdict.OUTCOME_UNKNOWN)


def test_lost_until_rolled_back() -> None:
    e = engine()
    e.done(S(K.BEGIN), True, True, 100.1)
    fail(e, Op.EXECUTE, K.READ, DEAD, sent=True, autocommit=True, resends=0, code=2013)
    assert e.lost and e.lost_code == 2013
    e.rolled_back()
    assert not e.lost and not e.txn_writes


def test_resends_are_bounded() -> None:
    e = engine(RetryOnError(resend=2))
    kw = {"sent": True, "autocommit": True}
    assert fail(e, Op.EXECUTE, K.READ, DEAD, resends=1, **kw) is Verdict.RESEND
    assert fail(e, Op.EXECUTE, K.READ, DEAD, resends=2, **kw) is Verdict.RAISE


def test_no_retry_policy_never_resends() -> None:
    e = engine(PingOnCheckout())
    assert (
        fail(e, Op.EXECUTE, K.READ, DEAD, sent=False, autocommit=True, resends=0) is Verdict.RAISE
    )
    assert e.connect_failed(ErrorKind.CONNECT_TRANSIENT, 1, 0.0) is None


@pytest.mark.parametrize(
    "error", [ErrorKind.OTHER, ErrorKind.STATEMENT_ABORTED, ErrorKind.READ_ONLY]
)
def test_other_errors_pass_through_and_keep_the_connection(error: ErrorKind) -> None:
    e = engine()
    assert (
        fail(e, Op.EXECUTE, K.WRITE, error, sent=True, autocommit=True, resends=0) is Verdict.RAISE
    )
    assert not e.stale


def test_deadlock_ends_the_transaction() -> None:
    e = engine()
    e.done(S(K.WRITE), True, False, 100.1)
    verdict = fail(
        e,
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
    e.done(S(K.READ), False, False, 100.1)
    assert not e.txn_writes  # reads with autocommit off: still recoverable
    e.done(S(K.WRITE), False, False, 100.2)  # a lock or write the server flag may not show
    assert e.txn_writes
    e.done(S(K.COMMIT), False, False, 100.3)
    assert not e.txn_writes
    e.done(S(K.BEGIN), True, True, 100.4)
    e.done(S(K.READ), True, True, 100.5)
    assert e.txn_writes
    e.done(S(K.ROLLBACK), False, True, 100.6)
    assert not e.txn_writes
    e.done(S(K.WRITE), False, True, 100.7)  # autocommit: committed by itself
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
    e.done(S(K.WRITE), True, False, 100.1)
    return e


def test_commit_sent_as_a_statement_is_outcome_unknown() -> None:
    kw = {"autocommit": False, "resends": 0}
    assert fail(_with_writes(), Op.EXECUTE, K.COMMIT, DEAD, sent=True, **kw) is (
        Verdict.OUTCOME_UNKNOWN
    )
    assert fail(_with_writes(), Op.EXECUTE, K.COMMIT, DEAD, sent=False, **kw) is (
        Verdict.TRANSACTION_LOST
    )
    assert fail(engine(), Op.EXECUTE, K.COMMIT, DEAD, sent=True, **kw) is Verdict.RECOVERED
    assert fail(_with_writes(), Op.EXECUTE, K.ROLLBACK, DEAD, sent=True, **kw) is (
        Verdict.RECOVERED
    )


@pytest.mark.parametrize(
    ("kind", "commits"), [(K.WRITE, True), (K.WRITE, None), (K.BEGIN, False), (K.SESSION, True)]
)
def test_a_statement_that_commits_implicitly_is_outcome_unknown(
    kind: K, commits: bool | None
) -> None:
    """DDL, LOCK TABLES, BEGIN, SET autocommit=1 commit the open transaction first."""
    verdict = fail(
        _with_writes(),
        Op.EXECUTE,
        kind,
        DEAD,
        sent=True,
        autocommit=False,
        resends=0,
        commits=commits,
    )
    assert verdict is Verdict.OUTCOME_UNKNOWN


def test_an_implicit_commit_ends_the_tracked_transaction() -> None:
    e = engine()
    e.done(S(K.BEGIN), True, True, 100.1)
    e.done(S(K.WRITE), True, True, 100.2)
    e.done(S(K.WRITE, commits=True), False, True, 100.3)  # CREATE TABLE: committed
    assert not e.txn_writes and not e.explicit


def test_a_failed_write_may_have_written_part_way() -> None:
    e = engine()
    verdict = fail(
        e, Op.EXECUTEMANY, K.WRITE, ErrorKind.OTHER, sent=True, autocommit=False, resends=0
    )
    assert verdict is Verdict.RAISE and e.txn_writes  # a later loss is not "recovered"
    assert (
        fail(e, Op.COMMIT, K.COMMIT, DEAD, sent=True, autocommit=False, resends=0)
        is Verdict.OUTCOME_UNKNOWN
    )
    e = engine()
    fail(e, Op.EXECUTE, K.WRITE, ErrorKind.OTHER, sent=True, autocommit=True, resends=0)
    assert not e.txn_writes


# -- verdicts the engine alone makes (they were once edited by the proxy) -----------------


def test_a_refusal_to_write_from_a_server_still_writable_is_the_callers_error() -> None:
    from resilient_dbapi.hosts import Failover, Host, Role

    e = Engine([RetryOnError()], MYSQL_ERRORS, failover=Failover((Host("a", 1), Host("b", 2))))
    e.connected(100.0)
    assert e.asks_role(1290) and not e.asks_role(2013)
    stmt = S(K.WRITE)
    kw = {"sent": True, "autocommit": True, "resends": 0}
    assert e.failed(Op.EXECUTE, stmt, 1290, role=Role.WRITABLE, **kw) is Verdict.RAISE
    assert not e.stale  # the connection stays: a READ ONLY transaction of the caller's
    assert e.failed(Op.EXECUTE, stmt, 1290, role=Role.READ_ONLY, **kw) is Verdict.RESEND
    assert e.stale and e.stale_reason is Reason.READ_ONLY


def test_a_transaction_lost_under_a_guessed_autocommit_is_outcome_unknown() -> None:
    e = engine()
    e.done(S(K.WRITE), True, False, 100.1)
    verdict = e.failed(
        Op.EXECUTE, S(K.WRITE), 2013, sent=True, autocommit=False, resends=0,
        autocommit_known=False,
    )  # fmt: skip
    assert verdict is Verdict.OUTCOME_UNKNOWN
    assert e.lost and e.lost_uncertain  # every later statement says so until rollback()
    e.rolled_back()
    assert not e.lost and not e.lost_uncertain


def test_an_interruption_under_a_guessed_autocommit_is_outcome_unknown() -> None:
    e = engine()
    e.done(S(K.WRITE), True, False, 100.1)
    verdict = e.interrupted(Op.EXECUTE, S(K.WRITE), autocommit=False, autocommit_known=False)
    assert verdict is Verdict.OUTCOME_UNKNOWN and e.lost and e.lost_uncertain
    e = engine()
    e.done(S(K.WRITE), True, False, 100.1)
    assert e.interrupted(Op.EXECUTE, S(K.WRITE), autocommit=False) is Verdict.TRANSACTION_LOST
    assert not e.lost_uncertain


def test_an_operation_aborted_by_close_is_never_sent_again() -> None:
    """close() from another thread aborted it: what would be sent again is raised as it is
    (the connection is closed); what was lost is reported as after any loss."""
    read = engine()
    assert fail(read, Op.EXECUTE, K.READ, DEAD, sent=True, autocommit=True, resends=0) is (
        Verdict.RESEND
    )
    # A read, and a write the driver proves it never sent: safe to send again, if open.
    for kind, sent in ((K.READ, True), (K.WRITE, False)):
        e = engine()
        verdict = fail(
            e, Op.EXECUTE, kind, DEAD, sent=sent, autocommit=True, resends=0, closing=True
        )
        assert verdict is Verdict.RAISE and e.stale
    unrestorable = engine()
    unrestorable.state_made(frozenset({"user variables"}))
    verdict = fail(
        unrestorable, Op.EXECUTE, K.READ, DEAD, sent=True, autocommit=True, resends=0, closing=True
    )
    assert verdict is Verdict.RAISE  # not SessionLostError: no session comes after it
    write = engine()
    verdict = fail(
        write, Op.EXECUTE, K.WRITE, DEAD, sent=True, autocommit=True, resends=0, closing=True
    )
    assert verdict is Verdict.OUTCOME_UNKNOWN
    txn = engine()
    txn.done(S(K.WRITE), True, False, 100.1)
    verdict = fail(
        txn, Op.EXECUTE, K.READ, DEAD, sent=True, autocommit=False, resends=0, closing=True
    )
    assert verdict is Verdict.TRANSACTION_LOST and txn.lost


def test_a_session_on_the_callers_socket_is_never_sent_again() -> None:
    """PyMySQL's connect(sock): no other way to the server is known. What would be sent
    again on a new connection is raised as the driver's error; losses are judged as
    ever; once opened by the connect arguments again, reads are resent again."""
    for kind, sent in ((K.READ, True), (K.WRITE, False)):
        e = engine()
        e.on_callers_socket(True)
        verdict = fail(e, Op.EXECUTE, kind, DEAD, sent=sent, autocommit=True, resends=0)
        assert verdict is Verdict.RAISE and e.stale
    unrestorable = engine()
    unrestorable.on_callers_socket(True)
    unrestorable.state_made(frozenset({"user variables"}))
    verdict = fail(unrestorable, Op.EXECUTE, K.READ, DEAD, sent=True, autocommit=True, resends=0)
    assert verdict is Verdict.RAISE
    write = engine()
    write.on_callers_socket(True)
    verdict = fail(write, Op.EXECUTE, K.WRITE, DEAD, sent=True, autocommit=True, resends=0)
    assert verdict is Verdict.OUTCOME_UNKNOWN
    # Nor replaced by choice: not when old (max age), idle, nor refused as read-only.
    old = engine(PingOnCheckout(), MaxAge(seconds=10, jitter=0), RetryOnError())
    old.connected(100.0)
    old.on_callers_socket(True)
    assert old.checkout(200.0).reconnect is None
    refused = engine()
    refused.on_callers_socket(True)
    verdict = fail(
        refused, Op.EXECUTE, K.WRITE, ErrorKind.READ_ONLY, sent=True, autocommit=True, resends=0
    )
    assert verdict is Verdict.RAISE and not refused.stale
    again = engine()
    again.on_callers_socket(True)
    again.on_callers_socket(False)
    verdict = fail(again, Op.EXECUTE, K.READ, DEAD, sent=True, autocommit=True, resends=0)
    assert verdict is Verdict.RESEND


def test_rollback_after_a_loss_with_the_connection_gone_sends_nothing() -> None:
    e = engine()
    e.done(S(K.WRITE), True, False, 100.1)
    fail(e, Op.EXECUTE, K.WRITE, DEAD, sent=True, autocommit=False, resends=0)
    assert e.lost and e.stale
    assert not e.rollback_needs_sending()  # the server rolled back as the connection went
    assert not e.lost


def test_a_refused_commit_stays_guarded_until_a_rollback_worked() -> None:
    e = engine()
    e.done(S(K.WRITE), True, False, 100.1)
    fail(
        e, Op.COMMIT, K.COMMIT, ErrorKind.STATEMENT_ABORTED, sent=True, autocommit=False, resends=0
    )
    assert e.lost and not e.stale
    assert e.rollback_needs_sending()  # the connection lives: roll back for real
    e.rollback_failed()  # ...which failed on a live connection: still guarded
    assert e.lost
    e.must_replace(Reason.ERROR)
    e.rollback_failed()  # ...which gave the connection up: the server rolls back
    assert not e.lost


def test_once_a_connection_used_tls_plain_text_is_refused() -> None:
    e = engine()
    assert e.tls_allows(True)
    assert e.tls_allows(True)
    assert not e.tls_allows(False)
    plain = engine()
    assert plain.tls_allows(False) and plain.tls_allows(False)  # plain text from the start
    assert plain.tls_allows(True)
    assert not plain.tls_allows(False)  # TLS seen once: never plain text again


def test_the_tls_floor_is_shared_by_the_engines_given_it() -> None:
    # The logical connections of one creator() or pool share a floor: TLS on one of them
    # bars plain text on all of them, including one that has not connected yet.
    floor = TLSFloor()
    first = Engine([], MYSQL_ERRORS, tls_floor=floor)
    second = Engine([], MYSQL_ERRORS, tls_floor=floor)
    assert second.tls_allows(False)  # before any TLS: plain text is what there is
    assert first.tls_allows(True)
    assert floor.required
    assert not second.tls_allows(False)
    assert second.tls_allows(True)
    apart = Engine([], MYSQL_ERRORS)  # another connect(): a floor of its own
    assert apart.tls_allows(False) and not apart.tls_floor.required


def test_a_tls_downgrade_is_refused_at_once_not_retried() -> None:
    # The refusal carries the driver's "gone" code (2006), which alone would be retried
    # as a dead connection until the deadline; its class says it is no outage.
    e = engine()
    adapter = adapters.adapter_for_error(pymysql.err.OperationalError())
    assert adapter is not None
    refusal = tls_downgrade_error(adapter)
    assert isinstance(refusal, pymysql.err.OperationalError)
    assert connect_failure(refusal, e) == (2006, ErrorKind.CONNECT_FATAL)
    assert e.connect_failed(ErrorKind.CONNECT_FATAL, 1, 0.0) is None
    gone = pymysql.err.OperationalError(2006, "MySQL server has gone away")
    assert connect_failure(gone, e) == (2006, ErrorKind.DEAD)
    assert e.connect_failed(ErrorKind.DEAD, 1, 0.0) is not None
    # With several hosts the refusal is not passed over to the next one either.
    memory = HostMemory(Failover.of("db1:3306,db2:3306", "any"))
    connector = ConnectorBase(pymysql.connect, (), {}, memory)
    host = memory.failover.hosts[0]
    observer = Observer(())
    assert not connector.passed_over(host, refusal, e, 0.0, observer, {})
    assert connector.passed_over(host, gone, e, 0.0, observer, {})


def test_settings_are_journaled_by_what_they_set() -> None:
    from resilient_dbapi.statements import statement

    e = engine(MaxAge())
    several = statement("SET a = 1; SET wait_timeout = 20")
    assert e.settings_made(several, "ignored", None, count=1) is False  # the first took
    assert list(e.journal) == ["set a"]
    assert e.settings_made(several, "ignored", None) is True  # wait_timeout: read it again
    assert list(e.journal) == ["set a", "set wait_timeout"]
    assert e.journal["set wait_timeout"] == ("execute", ("SET wait_timeout = 20", None))
    one = statement("SET a = %s")
    assert e.settings_made(one, "SET a = %s", (2,)) is False
    assert list(e.journal) == ["set wait_timeout", "set a"]  # moved to the end, replaced
    assert engine(PingOnCheckout()).settings_made(several, "", None) is False  # not followed


def test_a_driver_in_this_process_is_never_checked_or_recycled() -> None:
    from resilient_dbapi import ErrorTable
    from resilient_dbapi.error_kinds import POSTGRES_ERRORS

    e = Engine([PingOnCheckout(), MaxAge()], ErrorTable())
    e.driver_known(POSTGRES_ERRORS, in_process=True, idle_setting="idle_session_timeout")
    assert e.errors is POSTGRES_ERRORS and e.ping is None and e.max_age is None
    assert e.idle_setting == "idle_session_timeout"
    mine = ErrorTable().adding(ErrorKind.DEAD, 9999)
    e = Engine([mine], ErrorTable())
    e.driver_known(MYSQL_ERRORS, in_process=False, idle_setting="wait_timeout")
    assert e.errors is mine  # the policies' own table wins


def test_ddl_alone_in_its_transaction_is_outcome_unknown() -> None:
    """DDL with autocommit off and nothing written before it: once run it is durable,
    so it is never "rolled back". It commits before and after itself: nothing else was
    open, no acknowledgment is owed."""
    e = engine()
    verdict = fail(
        e, Op.EXECUTE, K.WRITE, DEAD, commits=True, sent=True, autocommit=False, resends=0
    )
    assert verdict is Verdict.OUTCOME_UNKNOWN
    assert not e.lost


def test_a_procedure_lost_with_autocommit_off_is_acknowledged_before_anything_goes_on() -> None:
    """A CALL (commits: cannot tell) may have committed, or left writes in the open
    transaction the caller would go on with: until rollback(), everything raises."""
    e = engine()
    verdict = fail(
        e, Op.EXECUTE, K.WRITE, DEAD, commits=None, sent=True, autocommit=False, resends=0
    )
    assert verdict is Verdict.OUTCOME_UNKNOWN
    assert e.lost and e.lost_uncertain


def test_an_uncertain_commit_is_acknowledged_before_anything_goes_on() -> None:
    e = engine()
    e.done(S(K.WRITE), True, False, 100.1)
    assert fail(e, Op.COMMIT, K.COMMIT, DEAD, sent=True, autocommit=False, resends=0) is (
        Verdict.OUTCOME_UNKNOWN
    )
    assert e.lost and e.lost_uncertain
    assert not e.rollback_needs_sending()  # the connection went with it: nothing to send
    assert not e.lost and not e.lost_uncertain


def test_an_open_xa_branch_is_never_reported_rolled_back() -> None:
    e = engine()
    xa = Statement(K.WRITE, None, False, xa="start")
    e.done(xa, True, True, 100.1)
    assert e.xa_open and e.txn_writes  # never replaced silently
    e.done(Statement(K.WRITE, None, False, xa="prepare"), False, True, 100.2)
    assert e.txn_writes
    # A plain read lost with the prepared branch: TransactionLost would claim a rollback.
    assert fail(e, Op.EXECUTE, K.READ, DEAD, sent=False, autocommit=True, resends=0) is (
        Verdict.OUTCOME_UNKNOWN
    )
    assert e.lost and e.lost_uncertain
    e.rolled_back()
    e.connected(101.0)
    assert not e.xa_open


def test_an_ended_xa_branch_is_forgotten() -> None:
    e = engine()
    e.done(Statement(K.WRITE, None, False, xa="start"), True, True, 100.1)
    e.done(Statement(K.WRITE, None, False, xa="commit"), False, True, 100.2)
    assert not e.xa_open and not e.txn_writes


def test_a_replaced_session_refuses_once_what_asks_about_the_old_ones_history() -> None:
    history, plain = Statement(K.READ, history=True), S(K.READ)
    e = engine()
    assert not e.history_lost  # the first session has no predecessor
    e.must_replace(Reason.LIVENESS)
    e.connected(200.0)
    assert e.history_lost and e.next_check_at == float("-inf")  # the slow path next
    assert e.checkout(201.0) == Checkout() and e.next_check_at == float("-inf")
    assert not e.asks_lost_history(plain)
    assert e.asks_lost_history(history)  # refused once
    assert not e.history_lost  # what asks next is the new session's history


def test_a_statement_on_the_new_session_makes_its_own_history() -> None:
    e = engine()
    e.connected(200.0)
    e.done(S(K.WRITE), False, True, 201.0)
    assert not e.history_lost and e.next_check_at > 201.0


def test_the_last_generated_id_stays_the_old_sessions_until_an_insert_makes_one() -> None:
    """LAST_INSERT_ID() outlasts the statements after it: on a session that replaced
    another, after a BEGIN or a read, it still asks for the old session's last id, and
    is refused once. After a write on the new session the server is asked first (None):
    refused when it generated no id (0), sent when it did. Other history (ROW_COUNT())
    is the statement's before it, the new session's."""
    last_id = Statement(K.READ, history=True, insert_id=True)
    row_count = Statement(K.READ, history=True)

    def replaced(on_connect: tuple[str, ...] = ()) -> Engine:
        e = engine()
        assert not e.insert_id_lost  # the first session has no predecessor
        e.must_replace(Reason.LIVENESS)
        e.connected(200.0)
        e.tracking(True, on_connect=on_connect)
        assert e.insert_id_lost
        e.done(S(K.READ), False, True, 201.0)  # anything else ran on the new session
        assert e.asks_lost_history(row_count) is False
        return e

    e = replaced()
    assert e.asks_lost_history(last_id) is True  # no write since: the old session's
    assert e.asks_lost_history(last_id) is False  # refused once
    for made in (False, True):
        e = replaced()
        e.wrote_on_new_session()
        assert e.asks_lost_history(last_id) is None  # ask the new session first
        assert e.insert_id_asked(made) is (not made)  # refused if it generated none
        assert e.asks_lost_history(last_id) is False  # asked once
    # A set-up that may have made an id itself: whatever the server says is not proof
    for setup in (
        ("INSERT INTO log (x) VALUES (1)",),
        ("SET identity = 5",),
        ("SET autocommit = 1, identity = 5",),  # among several (review of d239bdd)
        ("SET identity = @@auto_increment_offset",),  # computed: keyed "set identity <- ..."
        ("SET autocommit = @@autocommit, identity = 5",),  # after a computed value (review)
    ):
        e = replaced(setup)
        e.wrote_on_new_session()
        assert e.asks_lost_history(last_id) is True
    e = replaced(("SET time_zone = '+00:00'",))
    e.wrote_on_new_session()
    assert e.asks_lost_history(last_id) is None
    for sql in (
        "SET identity = 5, autocommit = 1",
        "SET identity = @@auto_increment_offset",
        "SET time_zone = @@time_zone, identity = 5",
    ):
        e = replaced()
        e.record(session_key(sql), ("execute", (sql, None)))
        e.tracking(True)  # as the next connection's set-up replays the journal
        e.wrote_on_new_session()
        assert e.asks_lost_history(last_id) is True, sql
    e.must_replace(Reason.LIVENESS)
    e.connected(300.0)
    assert e.asks_lost_history(last_id) is True  # nothing ran: refused without asking
    assert e.asks_lost_history(last_id) is False


def _in_transaction(e: Engine) -> None:
    e.done(S(K.WRITE), True, False, 101.0)
    assert e.txn_writes


_INSERT = statement("INSERT INTO t (uid) VALUES (%s)")


def _lost_in_flight(e: Engine, stmt: Statement = _INSERT) -> Verdict:
    return e.failed(Op.EXECUTE, stmt, 2013, sent=True, autocommit=False, resends=0)


def test_a_lost_transaction_that_kept_writes_is_of_unknown_outcome() -> None:
    e = engine(all_roll_back=False)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    e.wrote_in_transaction(statement("INSERT INTO m VALUES (1)"), True)  # MyISAM
    assert _lost_in_flight(e) is Verdict.OUTCOME_UNKNOWN
    assert e.lost and e.lost_uncertain


def test_a_write_lost_in_flight_is_rolled_back_only_once_the_server_showed_its_tables() -> None:
    """The lost statement itself may have written a MyISAM table: only a text the
    server ran in a transaction without naming such a write is provably rolled back."""
    e = engine(all_roll_back=False)
    _in_transaction(e)
    assert _lost_in_flight(e) is Verdict.OUTCOME_UNKNOWN
    e.rollback_needs_sending()
    e.rolled_back()
    e.connected(200.0, wait_timeout=None)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)  # the server named no MyISAM write
    assert _lost_in_flight(e) is Verdict.TRANSACTION_LOST


def test_a_write_the_server_kept_or_could_not_name_is_never_learned() -> None:
    e = engine(all_roll_back=False)
    _in_transaction(e)
    several = statement("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
    call = statement("CALL p()")
    e.wrote_in_transaction(several, False)
    assert e.kept and several not in e.rolls_back  # several statements: not readable
    e.done(S(K.COMMIT), False, False, 102.0)
    _in_transaction(e)
    e.wrote_in_transaction(call, False)
    assert call not in e.rolls_back  # a procedure may write MyISAM another time
    assert _lost_in_flight(e, call) is Verdict.OUTCOME_UNKNOWN


def test_without_the_servers_word_no_write_is_provably_rolled_back() -> None:
    e = engine(all_roll_back=False)
    e.tracking(False)  # a driver that shows no session tracking
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    assert e.kept
    assert _lost_in_flight(e, statement("SELECT 1")) is Verdict.OUTCOME_UNKNOWN


def test_kept_writes_end_with_their_transaction() -> None:
    e = engine(all_roll_back=False)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    e.wrote_in_transaction(statement("INSERT INTO m VALUES (1)"), True)
    e.done(S(K.COMMIT), False, False, 102.0)
    assert not e.kept
    _in_transaction(e)
    assert _lost_in_flight(e) is Verdict.TRANSACTION_LOST


def test_a_transaction_that_only_read_is_rolled_back_without_tracking() -> None:
    e = engine(all_roll_back=False)
    e.tracking(False)
    e.done(statement("BEGIN"), True, True, 101.0)
    assert _lost_in_flight(e, statement("SELECT 1")) is Verdict.TRANSACTION_LOST


@pytest.mark.parametrize("sql", ["COMMIT AND CHAIN", "ROLLBACK WORK AND CHAIN"])
def test_a_chaining_end_lost_with_nothing_written_loses_the_chained_transaction(sql: str) -> None:
    """The transaction it would have opened is not on a new session, where each later
    statement would commit on its own: lost until rollback(), not "nothing was lost"."""
    e = engine()  # nothing open: the end itself has nothing to commit or roll back
    verdict = e.failed(Op.EXECUTE, statement(sql), 2013, sent=True, autocommit=True, resends=0)
    assert verdict is Verdict.TRANSACTION_LOST
    assert e.lost and not e.lost_uncertain


def test_after_set_completion_type_every_end_may_chain() -> None:
    e = engine()
    e.record("set completion_type", ("SET completion_type = CHAIN", None))
    verdict = e.failed(
        Op.ROLLBACK, statement("ROLLBACK"), 2013, sent=True, autocommit=True, resends=0
    )
    assert verdict is Verdict.TRANSACTION_LOST


def test_a_plain_end_lost_with_nothing_written_lost_nothing() -> None:
    e = engine()
    verdict = e.failed(
        Op.EXECUTE, statement("ROLLBACK"), 2013, sent=True, autocommit=True, resends=0
    )
    assert verdict is Verdict.RECOVERED and not e.lost


def test_the_servers_transaction_flag_decides_after_settings_and_ends() -> None:
    """``SET autocommit = 'ON'`` inside BEGIN with autocommit off committed (the text
    cannot prove it); ``autocommit(True)`` with autocommit on did not (nothing sent);
    the flag after a result set is stale in PyMySQL, so it is not read there."""
    e = engine()
    e.tracking(True, False, says_transaction=True)
    e.done(statement("BEGIN"), True, False, 101.0)
    e.done(statement("SET autocommit = 'ON'"), False, True, 102.0)
    assert not e.txn_writes and not e.explicit
    e.done(statement("BEGIN"), True, True, 103.0)
    e.done(statement("COMMIT"), True, True, 104.0)  # autocommit(True), nothing sent
    assert e.txn_writes
    e.done(statement("ROLLBACK"), False, True, 105.0)
    e.done(S(K.WRITE), False, False, 106.0)  # INSERT ... RETURNING: the last OK's flags
    assert e.txn_writes and e.sticky


def test_without_the_servers_flag_the_text_decides() -> None:
    e = engine()
    e.done(statement("BEGIN"), True, False, 101.0)
    e.done(statement("SET autocommit = 'ON'"), False, True, 102.0)
    assert e.txn_writes  # the weaker claim: still counted open


def test_a_chaining_end_leaves_a_transaction_open_without_the_servers_flag() -> None:
    """mysqlclient shows no IN_TRANS flag: the chained transaction is known from the
    text, or a read lost after it would be sent again on a new session."""
    e = engine()
    e.done(statement("COMMIT AND CHAIN"), False, True, 101.0)
    assert e.txn_writes
    e.done(statement("COMMIT"), False, True, 102.0)
    assert not e.txn_writes


def test_a_setting_lost_in_flight_inside_a_transaction_loses_only_the_transaction() -> None:
    e = engine(all_roll_back=False)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    assert _lost_in_flight(e, statement("SET NAMES utf8mb4")) is Verdict.TRANSACTION_LOST


def test_a_write_refused_half_way_inside_a_transaction_may_have_kept_rows() -> None:
    """A multi-row INSERT into MyISAM keeps the rows before the failing one, and the
    server names no transaction state with an error: unless the text was seen to write
    only tables that roll back, the transaction is no longer provably rolled back."""
    e = engine(all_roll_back=False)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    e.failed(Op.EXECUTE, _INSERT, 1062, sent=True, autocommit=False, resends=0)
    assert not e.kept  # a learned text refused: it writes only tables that roll back
    multirow = statement("INSERT INTO m VALUES (1), (2)")
    e.failed(Op.EXECUTE, multirow, 1062, sent=True, autocommit=False, resends=0)
    assert e.kept
    assert _lost_in_flight(e) is Verdict.OUTCOME_UNKNOWN


def test_a_result_set_reply_says_nothing_but_row_locks_write_nothing() -> None:
    e = engine(all_roll_back=False)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    e.wrote_in_transaction(statement("SELECT * FROM t WHERE id = 1 FOR UPDATE"), None)
    assert not e.kept
    assert _lost_in_flight(e, statement("SELECT * FROM t FOR UPDATE")) is Verdict.TRANSACTION_LOST
    e.rollback_needs_sending()
    e.rolled_back()
    e.connected(200.0, wait_timeout=None)
    _in_transaction(e)
    e.wrote_in_transaction(statement("INSERT INTO t (uid) VALUES (1) RETURNING id"), None)
    assert e.kept


def test_a_kept_write_named_in_a_reply_read_before_a_failure_counts() -> None:
    e = engine(all_roll_back=False)
    e.server_kept()  # outside a transaction: nothing to keep
    assert not e.kept
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    e.server_kept()  # a procedure's last result, drained by the driver
    assert _lost_in_flight(e) is Verdict.OUTCOME_UNKNOWN


@pytest.mark.parametrize("where", ["journal", "on_connect"])
def test_the_callers_own_tracking_setting_turns_the_servers_word_off(where: str) -> None:
    e = engine(all_roll_back=False)
    off = statement("SET SESSION session_track_transaction_info = OFF")
    if where == "journal":
        e.settings_made(off, off_text := "SET SESSION session_track_transaction_info = OFF", None)
        assert not e.tracks
        e.tracking(True)  # a new connection replays the journal: still off
    else:
        off_text = "SET session_track_transaction_info = 'OFF'"
        e.tracking(True, on_connect=(off_text,))
    assert not e.tracks
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    assert e.kept and _INSERT not in e.rolls_back


def test_learned_texts_are_forgotten_after_ddl_and_unused_after_use() -> None:
    e = engine(all_roll_back=False)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    assert _INSERT in e.rolls_back
    e.done(statement("ALTER TABLE t ENGINE=MyISAM"), False, False, 102.0)
    assert not e.rolls_back
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    use = statement("USE other")
    e.settings_made(use, "USE other", None)
    assert _INSERT in e.rolls_back  # kept for the other connections of the pool ...
    assert _lost_in_flight(e) is Verdict.OUTCOME_UNKNOWN  # ... not for this one


def test_the_servers_default_completion_type_makes_a_lost_end_chain() -> None:
    e = engine()
    assert e.asks_completion()
    e.completion_known(True)
    assert not e.asks_completion()
    verdict = e.failed(Op.COMMIT, statement("COMMIT"), 2013, sent=True, autocommit=True, resends=0)
    assert verdict is Verdict.TRANSACTION_LOST
    other = engine()
    other.completion_known(False)
    verdict = other.failed(
        Op.COMMIT, statement("COMMIT"), 2013, sent=True, autocommit=True, resends=0
    )
    assert verdict is Verdict.RECOVERED


def test_a_broken_tls_stream_is_a_dead_connection_but_never_retried_at_connect() -> None:
    e = engine()
    assert e.is_dead(2026)
    verdict = e.failed(
        Op.ROLLBACK, statement("ROLLBACK"), 2026, sent=True, autocommit=False, resends=0
    )
    assert verdict is Verdict.RECOVERED and e.stale
    assert not Engine.connect_may_pass(ErrorKind.TLS_BROKEN)


@pytest.mark.parametrize(
    "text",
    [
        "USE other; INSERT INTO t VALUES (1)",
        "SET @@session.session_track_transaction_info := 'OFF'",
        "SET `session_track_transaction_info` = 0, @x = 1",
        "CALL p()",
    ],
)
def test_a_text_that_may_change_the_session_unseen_unsettles_it(text: str) -> None:
    """What the scanner cannot read as a setting may still set the current database or
    turn the server's reports off: neither is relied on until the next connection."""
    e = engine(all_roll_back=False)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    assert _INSERT in e.rolls_back
    stmt = statement(text)
    assert stmt.unsettles
    e.done(stmt, True, False, 102.0)
    assert not e.tracks
    assert _lost_in_flight(e) is Verdict.OUTCOME_UNKNOWN
    e.rollback_needs_sending()
    e.rolled_back()
    e.connected(200.0, wait_timeout=None)
    e.tracking(True)
    assert e.tracks and not e.moved  # a new session is as the caller set it up


def test_a_failed_text_that_may_change_the_session_unsettles_it_too() -> None:
    e = engine(all_roll_back=False)
    e.failed(
        Op.EXECUTE,
        statement("USE other; INSERT INTO t VALUES (1)"),
        1062,
        sent=True,
        autocommit=True,
        resends=0,
    )
    assert e.moved and not e.tracks


def test_only_what_may_change_a_table_forgets_what_was_learned_of_tables() -> None:
    e = engine(all_roll_back=False)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    e.table_known(("", "t"), True)
    for text in ("LOCK TABLES t WRITE", "ANALYZE TABLE t", "TRUNCATE TABLE u"):
        e.done(statement(text), False, False, 102.0)
    assert _INSERT in e.rolls_back and e.facts.tables == {("", "t"): True}
    e.done(
        statement("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW SET @x = 1"),
        False,
        False,
        103.0,
    )
    assert not e.rolls_back and not e.facts.tables


def test_a_write_refused_half_way_counts_in_a_transaction_begun_with_autocommit_on() -> None:
    e = engine(all_roll_back=False)
    e.done(statement("BEGIN"), True, True, 101.0)
    e.done(_INSERT, True, True, 101.0)
    e.wrote_in_transaction(_INSERT, False)
    multirow = statement("INSERT INTO m VALUES (1), (2)")
    verdict = e.failed(Op.EXECUTE, multirow, 1062, sent=True, autocommit=True, resends=0)
    assert verdict is Verdict.RAISE and e.kept
    assert (
        e.failed(Op.EXECUTE, _INSERT, 2013, sent=True, autocommit=True, resends=0)
        is Verdict.OUTCOME_UNKNOWN
    )


def test_a_procedure_that_failed_after_some_ddl_forgets_what_was_learned_of_tables() -> None:
    from resilient_dbapi.statements import CALL_OP

    e = engine(all_roll_back=False)
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    e.table_known(("", "t"), True)
    verdict = e.failed(Op.CALLPROC, CALL_OP, 1644, sent=True, autocommit=False, resends=0)
    assert verdict is Verdict.RAISE
    assert not e.rolls_back and not e.facts.tables


@pytest.mark.parametrize(
    ("text", "moves", "silences"),
    [
        ("SET sql_mode = %s; USE other", True, False),
        ("SET sql_mode = %s; SET session_track_transaction_info = 'OFF'", True, True),
    ],
)
def test_settings_sent_together_with_parameters_hide_nothing(
    text: str, moves: bool, silences: bool
) -> None:
    """Journaled as one entry under the first one's key, a USE or tracking setting among
    them still counts, on this connection and on every one that replays them."""
    e = engine(all_roll_back=False)
    e.settings_made(statement(text), text, ("",))
    assert e.tracks is not silences
    e.connected(200.0, wait_timeout=None)
    e.tracking(True)
    assert e.tracks is not silences
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    assert (_INSERT not in e.rolls_back) is moves


@pytest.mark.parametrize(
    "sql", ["SET @@session.session_track_transaction_info := 'OFF'", "CALL init()"]
)
def test_an_on_connect_text_that_may_silence_the_server_turns_tracking_off(sql: str) -> None:
    e = engine(all_roll_back=False)
    e.tracking(True, on_connect=(sql,))
    assert not e.tracks


def test_a_session_with_a_temporary_table_learns_nothing_for_the_pool() -> None:
    """``CREATE TEMPORARY TABLE t ENGINE=InnoDB`` may shadow a MyISAM ``t``: what this
    session sees of ``t`` is not what the pool's other sessions would."""
    e = engine(all_roll_back=False)
    e.state_made(frozenset({"temporary tables"}))
    _in_transaction(e)
    e.wrote_in_transaction(_INSERT, False)
    assert not e.rolls_back
    returning = statement("INSERT INTO app.t (uid) VALUES (1) RETURNING uid")
    assert e.asks_table(returning, autocommit=False) is None


def test_only_a_refused_table_question_is_remembered() -> None:
    e = engine(all_roll_back=False)
    e.table_unanswered(("", "t"), 1317)  # KILL QUERY: passing
    assert e.facts.tables == {}
    e.table_unanswered(("", "t"), 1142)  # no privilege: asked no more
    assert e.facts.tables == {("", "t"): False}


def test_a_completion_type_the_server_would_not_tell_is_guessed_for_this_connection_only() -> None:
    e = engine()
    e.completion_known(None)
    verdict = e.failed(Op.COMMIT, statement("COMMIT"), 2013, sent=True, autocommit=True, resends=0)
    assert verdict is Verdict.TRANSACTION_LOST
    assert e.facts.chains is None and e.asks_completion()  # the next connection asks
    e.completion_known(False)
    assert not e.chains_untold
