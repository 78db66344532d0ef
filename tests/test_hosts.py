"""Unit tests of the sans-IO host choice and the engine's read-only rule (no server)."""

from __future__ import annotations

import ssl
from typing import Any

import psycopg
import pymysql
import pytest

from resilient_dbapi import MYSQL_ERRORS, ErrorKind, MaxAge, PingOnCheckout, RetryOnError
from resilient_dbapi._connector import ConnectorBase
from resilient_dbapi.adapters.psycopg import PsycopgAdapter
from resilient_dbapi.engine import Engine, Op, Reason, Verdict
from resilient_dbapi.events import Observer
from resilient_dbapi.hosts import Failover, Host, HostMemory, Role, Target, parse_hosts
from resilient_dbapi.statements import StatementKind as K

from .engine_calls import S, fail

READ_ONLY = ErrorKind.READ_ONLY
psycopg_adapter = PsycopgAdapter()
A, B, C = Host("a", 1), Host("b", 2), Host("c", 3)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([("a", 1), ("b", 2)], (A, B)),
        ("a:1, b:2 ,c:3", (A, B, C)),
        (["a:1", ("b", "2")], (A, B)),
        ("db1,db2", (Host("db1"), Host("db2"))),
        ("[::1]:3306,[fe80::1]", (Host("::1", 3306), Host("fe80::1"))),
        ("::1", (Host("::1"),)),
        ((A, "b:2"), (A, B)),
    ],
)
def test_hosts_are_parsed(given: object, expected: tuple[Host, ...]) -> None:
    assert parse_hosts(given) == expected


@pytest.mark.parametrize(
    ("given", "error", "names"),
    [
        ([], ValueError, "empty"),
        ("", ValueError, "empty"),
        ([("a", 0)], ValueError, "1 to 65535"),
        ([("a", 70000)], ValueError, "1 to 65535"),
        (["a:x"], ValueError, "port 'x'"),
        ([("a",)], ValueError, "pair"),
        ([("", 1)], ValueError, "pair"),
        ([("a", True)], ValueError, "port True"),
        (["a:1", "a:1"], ValueError, "twice"),
        ([":1"], ValueError, "no host name"),
        (["[::1"], ValueError, "without closing"),
        (["[::1]x"], ValueError, "only ':port'"),
        ([3306], ValueError, "not a host"),
        (3306, TypeError, "comma-separated"),
        ({"a": 1}, TypeError, "comma-separated"),
    ],
)
def test_bad_hosts_say_what_is_allowed(given: object, error: type, names: str) -> None:
    with pytest.raises(error, match=names):
        parse_hosts(given)


def test_failover_is_checked() -> None:
    assert Failover.of("a:1").target is Target.PRIMARY
    assert Failover.of("a:1", "replica").target is Target.REPLICA
    with pytest.raises(ValueError, match="'primary', 'replica' or 'any'"):
        Failover.of("a:1", "writer")
    with pytest.raises(TypeError, match="'primary', 'replica' or 'any'"):
        Failover.of("a:1", 1)
    with pytest.raises(ValueError, match="quarantine"):
        Failover.of("a:1", quarantine=-1)
    with pytest.raises(ValueError, match="quarantine"):
        Failover.of("a:1", quarantine=float("nan"))


@pytest.mark.parametrize(
    ("quarantine", "error", "shown"),
    [
        (86400.5, ValueError, "86400.5"),
        (float("inf"), ValueError, "inf"),
        (10**400, ValueError, "an int of 1329 bits"),  # math.isfinite() overflowed on it
        (True, TypeError, "True"),
        ("10", TypeError, "'10'"),
    ],
)
def test_quarantine_is_bounded(quarantine: object, error: type[Exception], shown: str) -> None:
    allowed = r"a number of seconds >= 0 and <= 86400 \(one day\)"
    with pytest.raises(error, match=rf"^quarantine must be {allowed}, got {shown}$"):
        Failover.of("a:1", quarantine=quarantine)
    assert Failover.of("a:1", quarantine=86400).quarantine == 86400.0


def test_targets() -> None:
    W, R, N = Role.WRITABLE, Role.READ_ONLY, Role.NOT_READY
    assert Target.PRIMARY.accepts(W) and not Target.PRIMARY.accepts(R)
    assert Target.REPLICA.accepts(R) and not Target.REPLICA.accepts(W)
    assert Target.ANY.accepts(R) and Target.ANY.accepts(W)
    # A node that serves nothing suits no target.
    assert not any(target.accepts(N) for target in Target)


def test_order_starts_at_the_current_host() -> None:
    memory = HostMemory(Failover((A, B, C)))
    assert memory.order(None, 0.0) == [A, B, C]
    assert memory.order(B, 0.0) == [B, C, A]


def test_failed_hosts_go_last_until_the_quarantine_ends() -> None:
    memory = HostMemory(Failover((A, B, C), quarantine=10.0))
    memory.failed(A, now=100.0)
    memory.failed(C, now=95.0)
    # The current host too goes last once it failed; the soonest released first.
    assert memory.order(A, 100.0) == [B, C, A]
    assert memory.order(A, 105.0) == [B, C, A]  # C's quarantine ended: back in line
    assert memory.order(A, 110.0) == [A, B, C]
    memory.failed(B, now=110.0)
    memory.succeeded(B)
    assert memory.order(None, 110.0) == [A, B, C]


def test_every_host_is_tried_even_when_all_failed() -> None:
    memory = HostMemory(Failover((A, B), quarantine=10.0))
    memory.failed(B, now=1.0)
    memory.failed(A, now=2.0)
    assert memory.order(A, 3.0) == [B, A]


# -- the engine's rule for a server that turned read-only or stopped serving --------------

# A refusal to write from a server that turned read-only (1290), and a refusal of
# everything from a Galera node outside the primary component (1047): the same rule.
REFUSALS = [
    (ErrorKind.READ_ONLY, 1290, Reason.READ_ONLY),
    (ErrorKind.NOT_READY, 1047, Reason.NOT_READY),
]


def engine(*policies: object, target: Target = Target.PRIMARY) -> Engine:
    e = Engine(
        policies or [PingOnCheckout(), MaxAge(), RetryOnError()],  # type: ignore[arg-type]
        MYSQL_ERRORS,
        failover=Failover((A, B), target),
    )
    e.connected(100.0, wait_timeout=None)
    return e


@pytest.mark.parametrize(
    ("op", "kind", "autocommit", "atomic", "expected"),
    [
        # One atomic statement refused, so never applied: sent again on another host.
        (Op.EXECUTE, K.WRITE, True, True, Verdict.RESEND),
        (Op.EXECUTE, K.WRITE, False, True, Verdict.RESEND),
        (Op.EXECUTE, K.READ, True, True, Verdict.RESEND),
        # Earlier rows or statements may have been applied before the refusal: unknown in
        # autocommit mode; inside the implicit transaction, rolled back with it.
        (Op.EXECUTE, K.WRITE, True, False, Verdict.OUTCOME_UNKNOWN),
        (Op.EXECUTE, K.WRITE, False, False, Verdict.TRANSACTION_LOST),
        (Op.EXECUTEMANY, K.WRITE, True, True, Verdict.OUTCOME_UNKNOWN),
        (Op.EXECUTEMANY, K.WRITE, False, True, Verdict.TRANSACTION_LOST),
        (Op.CALLPROC, K.WRITE, True, True, Verdict.OUTCOME_UNKNOWN),
        (Op.FETCH, K.READ, True, True, Verdict.RAISE),
        # A server refuses only a COMMIT with writes: they were rolled back.
        (Op.COMMIT, K.COMMIT, False, True, Verdict.TRANSACTION_LOST),
        (Op.ROLLBACK, K.ROLLBACK, False, True, Verdict.RECOVERED),
    ],
)
@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: r[0].value)
def test_read_only_refusal_outside_a_transaction(
    op: Op,
    kind: K,
    autocommit: bool,
    atomic: bool,
    expected: Verdict,
    refusal: tuple[ErrorKind, int, Reason],
) -> None:
    error, code, reason = refusal
    e = engine()
    verdict = fail(
        e,
        op,
        kind,
        error,
        sent=True,
        autocommit=autocommit,
        resends=0,
        code=code,
        atomic=atomic,
    )
    assert verdict is expected
    assert e.stale and e.stale_reason is reason and e.stale_code == code
    assert e.lost is (expected is Verdict.TRANSACTION_LOST)


@pytest.mark.parametrize(
    ("op", "kind", "commits", "expected"),
    [
        (Op.EXECUTE, K.WRITE, False, Verdict.TRANSACTION_LOST),
        (Op.EXECUTE, K.READ, False, Verdict.TRANSACTION_LOST),
        (Op.COMMIT, K.COMMIT, False, Verdict.TRANSACTION_LOST),  # refused: not committed
        (Op.EXECUTE, K.COMMIT, True, Verdict.TRANSACTION_LOST),
        (Op.EXECUTE, K.WRITE, True, Verdict.OUTCOME_UNKNOWN),  # DDL: committed first?
        (Op.ROLLBACK, K.ROLLBACK, False, Verdict.RECOVERED),
    ],
)
@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: r[0].value)
def test_read_only_refusal_inside_a_transaction_with_writes(
    op: Op, kind: K, commits: bool, expected: Verdict, refusal: tuple[ErrorKind, int, Reason]
) -> None:
    error, code, _ = refusal
    e = engine()
    e.done(S(K.BEGIN), True, True, 100.1)
    e.done(S(K.WRITE), True, True, 100.2)
    verdict = fail(
        e, op, kind, error, sent=True, autocommit=True, resends=0, code=code, commits=commits
    )
    assert verdict is expected
    assert e.stale and not e.txn_writes
    # Lost or uncertain, it is acknowledged with rollback() before anything goes on.
    assert e.lost is (expected in (Verdict.TRANSACTION_LOST, Verdict.OUTCOME_UNKNOWN))
    assert e.lost_uncertain is (expected is Verdict.OUTCOME_UNKNOWN)


def test_read_only_resends_are_bounded_and_respect_session_state() -> None:
    e = engine(RetryOnError(resend=1))
    kw = {"sent": True, "autocommit": True}
    assert fail(e, Op.EXECUTE, K.WRITE, READ_ONLY, resends=0, **kw) is Verdict.RESEND
    assert fail(e, Op.EXECUTE, K.WRITE, READ_ONLY, resends=1, **kw) is Verdict.RAISE
    e = engine()
    e.state_made(frozenset({"temporary table t"}))
    assert fail(e, Op.EXECUTE, K.WRITE, READ_ONLY, resends=0, **kw) is Verdict.SESSION_LOST


@pytest.mark.parametrize("target", [Target.REPLICA, None])
def test_read_only_is_the_callers_error_without_a_writable_target(target: Target | None) -> None:
    if target is None:
        e = Engine([RetryOnError()], MYSQL_ERRORS)
        e.connected(100.0)
    else:
        e = engine(target=target)
    assert not e.follows_read_only
    verdict = fail(e, Op.EXECUTE, K.WRITE, READ_ONLY, sent=True, autocommit=True, resends=0)
    assert verdict is Verdict.RAISE
    assert not e.stale


@pytest.mark.parametrize("target", [Target.PRIMARY, Target.REPLICA, Target.ANY])
def test_a_node_that_serves_nothing_sends_the_connection_elsewhere_whatever_the_target(
    target: Target,
) -> None:
    e = engine(target=target)
    assert e.asks_role(1047)
    verdict = fail(
        e, Op.EXECUTE, K.READ, ErrorKind.NOT_READY, sent=True, autocommit=True, resends=0
    )
    assert verdict is Verdict.RESEND
    assert e.stale and e.stale_reason is Reason.NOT_READY


def test_1047_from_a_server_that_says_it_is_ready_is_the_callers_error() -> None:
    # MySQL's "Unknown command" shares the code: the server, asked, is ready.
    e = engine()
    kw: dict[str, Any] = {"sent": True, "autocommit": True, "resends": 0}
    for role in (Role.WRITABLE, Role.READ_ONLY, None):
        assert e.failed(Op.EXECUTE, S(K.READ), 1047, role=role, **kw) is Verdict.RAISE
        assert not e.stale
    # With one host there is nowhere else to go: the server is not even asked.
    alone = Engine([RetryOnError()], MYSQL_ERRORS)
    alone.connected(100.0)
    assert not alone.asks_role(1047)
    assert alone.failed(Op.EXECUTE, S(K.READ), 1047, role=Role.NOT_READY, **kw) is Verdict.RAISE
    assert not alone.stale


def test_the_role_of_a_mysql_server_from_its_answers() -> None:
    from resilient_dbapi.adapters._mysql import role_of, settings

    plain = settings([("read_only", "OFF")])  # MySQL: no wsrep_on at all
    assert role_of(plain, None) is Role.WRITABLE
    assert role_of(settings([(b"read_only", b"ON"), (b"wsrep_on", b"OFF")]), None) is R
    node = settings([("read_only", "OFF"), ("wsrep_on", "ON")])
    synced = settings([("wsrep_ready", "ON"), ("wsrep_local_state", "4")])
    assert role_of(node, synced) is Role.WRITABLE
    # Outside the primary component, joining (1), donating (2) or joined (3): not ready.
    assert role_of(node, settings([("wsrep_ready", "OFF"), ("wsrep_local_state", "4")])) is N
    for state in ("1", "2", "3"):
        status = settings([("wsrep_ready", "ON"), ("wsrep_local_state", state)])
        assert role_of(node, status) is N


R, N = Role.READ_ONLY, Role.NOT_READY


def test_rounds_come_quickly_while_a_promotion_is_awaited() -> None:
    failover = Failover((A, B), role_poll=0.25)
    assert failover.between_rounds(2.0, saw_wrong_role=True) == 0.25
    assert failover.between_rounds(0.1, saw_wrong_role=True) == 0.1
    assert failover.between_rounds(2.0, saw_wrong_role=False) == 2.0  # all down: back off


@pytest.mark.parametrize(
    ("sql", "whole"),
    [
        ("INSERT INTO t (uid) VALUES (%s)", True),
        ("insert ignore into app.`t` partition (p0) (uid) values (1)", True),
        ("INSERT INTO t (uid) SELECT uid FROM u WHERE f(uid)", False),
        ("UPDATE t SET v = v + 1 WHERE id = 3", True),
        ("DELETE FROM t WHERE uid = 'x'", True),
        ("REPLACE INTO t VALUES (1, NOW())", True),
        ("SELECT 1", True),
        ("SET NAMES utf8mb4", True),
        ("COMMIT", True),
        ("CALL p()", False),
        ("BEGIN NOT ATOMIC INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); END", False),
        ("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", False),
        ("INSERT INTO t VALUES (place_order(1))", False),  # a stored function may write
        ("SELECT place_order(1)", False),
        ("CREATE TABLE x (a INT)", False),
        (b"INSERT INTO t VALUES (1)", True),
        (object(), False),
    ],
)
def test_which_statements_are_applied_whole_or_not_at_all(sql: object, whole: bool) -> None:
    from resilient_dbapi.statements import atomic

    assert atomic(sql) is whole


def test_host_memory_is_shared_safely_by_threads() -> None:
    import threading

    memory = HostMemory(Failover((A, B, C), quarantine=1.0))
    errors: list[BaseException] = []

    def churn(offset: int) -> None:
        try:
            for i in range(2000):
                host = (A, B, C)[(i + offset) % 3]
                memory.failed(host, now=float(i))
                assert sorted(memory.order(host, float(i)), key=str) == [A, B, C]
                memory.succeeded(host)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# -- the health view: a host marked by one connection, seen by the others ---------------


def _connector(memory: HostMemory) -> ConnectorBase:
    return ConnectorBase(lambda **kwargs: None, (), {}, memory)


def test_a_mark_is_news_only_to_connections_that_arrived_on_that_host_before_it() -> None:
    memory = HostMemory(Failover((A, B, C)))
    on_a, on_b, later_on_a = _connector(memory), _connector(memory), _connector(memory)
    on_a.arrived(A)
    on_b.arrived(B)
    watched = on_a.watch(None), on_b.watch(lambda: False)
    assert not any(check() for check in watched)  # nothing marked: the hot path says go on
    found = on_b.arrived_at + 1.0  # evidence gathered after both arrived
    memory.mark(A, "unreachable", found)
    later_on_a.arrived(A)
    later_on_a.arrived_at = found + 1.0  # it proved a reachable after the evidence
    # The hot path's one comparison sends both to the checkout, which asks.
    assert all(check() for check in watched)
    assert on_a.news() == "unreachable"
    assert on_b.news() is None  # another host's mark
    assert later_on_a.news() is None
    assert not any(check() for check in watched)  # the news was taken: fast again
    assert on_a.news() is None  # once
    memory.mark(B, "turned read-only", found)
    # A mark stands until the connection leaves the host (a session the engine would
    # not give up for it is told again, and again declines).
    assert (on_a.news(), on_b.news()) == ("unreachable", "turned read-only")
    on_a.arrived(B)
    assert on_a.news() is None


def test_evidence_older_than_an_arrival_is_no_news_to_it() -> None:
    """A connect begun before another connection arrived (and failing, a connect timeout
    later) says nothing of the session that arrived meanwhile."""
    memory = HostMemory(Failover((A, B)))
    on_a = _connector(memory)
    on_a.arrived(A)
    memory.mark(A, "unreachable", on_a.arrived_at - 3.0)
    assert on_a.watch(None)()  # the number moved: the checkout looks
    assert on_a.news() is None


def test_a_mark_is_stored_before_its_number_moves() -> None:
    """A checkout that sees the new number finds the mark (the reverse order lost it)."""

    class Watching(dict[Host, tuple[float, str]]):
        def __setitem__(self, host: Host, mark: tuple[float, str]) -> None:
            seen_then.append(memory.generation)
            super().__setitem__(host, mark)

    seen_then: list[int] = []
    memory = HostMemory(Failover((A, B)))
    memory._marks = Watching()
    memory.mark(A, "unreachable", 1.0)
    assert seen_then == [0] and memory.generation == 1


def test_the_hot_path_check_keeps_the_drivers_own() -> None:
    memory = HostMemory(Failover((A, B)))
    connector = _connector(memory)
    connector.arrived(A)
    dead = [False]
    check = connector.watch(lambda: dead[0])
    assert not check()
    dead[0] = True
    assert check()


def test_without_several_hosts_there_is_no_news() -> None:
    connector = ConnectorBase(lambda **kwargs: None, (), {})
    connector.arrived(None)
    assert connector.news() is None


def _tls_refused() -> Exception:
    error = pymysql.err.OperationalError(2003, "Can't connect to MySQL server")
    error.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    return error


@pytest.mark.parametrize(
    ("error", "marked"),
    [
        (pymysql.err.OperationalError(2003, "Can't connect"), True),
        (pymysql.err.OperationalError(2002, "Can't connect through socket"), True),
        (_tls_refused(), False),  # PyMySQL's 2003 for a refused certificate: it answered
        (pymysql.err.OperationalError(2013, "Lost connection (timed out)"), False),  # slow
        (pymysql.err.OperationalError(1040, "Too many connections"), False),
        (pymysql.err.OperationalError(1226, "User has exceeded a resource"), False),
        (pymysql.err.OperationalError(1045, "Access denied"), False),
    ],
)
def test_which_failed_connects_mark_the_host(error: Exception, marked: bool) -> None:
    """Never reached marks it; a server that answered (busy, refusing the login or the
    certificate, slow to shake hands) does not: its sessions are not in doubt."""
    memory = HostMemory(Failover((A, B)))
    on_a = _connector(memory)
    on_a.arrived(A)
    connecting = _connector(memory)
    e = engine()
    e.driver_known(MYSQL_ERRORS, False, None)
    connecting.passed_over(A, error, e, 0.0, Observer(()), {}, on_a.arrived_at + 1.0)
    assert (on_a.news() is not None) is marked


@pytest.mark.parametrize(
    ("message", "reached"),
    [
        ('connection to server at "127.0.0.1", port 1 failed: Connection refused', False),
        ("connection timeout expired", False),
        ("FATAL:  remaining connection slots are reserved for roles with privileges", True),
        ("FATAL:  sorry, too many clients already", True),
        ("SSL error: certificate verify failed", True),
    ],
)
def test_what_libpq_says_of_a_server_never_reached(message: str, reached: bool) -> None:
    from resilient_dbapi._connector import never_reached

    error = psycopg.OperationalError(message)
    code = psycopg_adapter.error_code(error)
    assert never_reached(error, code) is not reached


def test_a_host_with_the_wrong_role_is_marked() -> None:
    from resilient_dbapi._connector import WrongRole
    from resilient_dbapi.adapters import adapter_for_error

    memory = HostMemory(Failover((A, B)))
    on_a = _connector(memory)
    on_a.arrived(A)
    adapter = adapter_for_error(pymysql.err.OperationalError(2003, ""))
    assert adapter is not None
    wrong = WrongRole(adapter, Role.READ_ONLY)
    _connector(memory).passed_over(A, wrong, engine(), 0.0, Observer(()), {}, on_a.arrived_at + 1)
    assert on_a.news() == "read-only"


def test_leaving_a_marked_host_tries_it_last_again() -> None:
    memory = HostMemory(Failover((A, B), quarantine=10.0))
    connector = _connector(memory)
    connector.arrived(A)
    assert memory.order(A, 100.0) == [A, B]
    connector.left_marked(100.0)
    assert memory.order(A, 105.0) == [B, A]


def test_the_engine_replaces_on_a_mark_unless_the_session_cannot_be_rebuilt() -> None:
    e = engine()
    assert e.host_marked()
    assert e.stale and e.checkout(101.0).reconnect is Reason.HOST_MARKED
    e = engine()
    e.state_made(frozenset({"a temporary table"}))
    assert not e.host_marked() and not e.stale  # it finds out for itself
    e = engine()
    e.on_callers_socket(True)
    assert not e.host_marked() and not e.stale


def test_an_error_during_commit_leaves_the_outcome_unknown() -> None:
    # 1180 from a Galera node that lost the primary component while replicating: the
    # others may have applied the write. Never sent again, never called rolled back.
    e = engine()
    kw: dict[str, Any] = {"sent": True, "autocommit": True, "resends": 0}
    assert e.failed(Op.EXECUTE, S(K.WRITE), 1180, **kw) is Verdict.OUTCOME_UNKNOWN
    assert e.stale
    e = engine()
    e.done(S(K.BEGIN), True, True, 100.1)
    e.done(S(K.WRITE), True, True, 100.2)
    assert e.failed(Op.COMMIT, S(K.COMMIT), 1180, **kw) is Verdict.OUTCOME_UNKNOWN


def test_a_failed_commit_is_never_reported_a_success() -> None:
    # A COMMIT the engine saw no writes for (they were opened past the proxy) failing
    # with 1180: there was something to commit, and its fate is unknown.
    e = engine()
    kw: dict[str, Any] = {"sent": True, "autocommit": False, "resends": 0}
    assert e.failed(Op.COMMIT, S(K.COMMIT), 1180, **kw) is Verdict.OUTCOME_UNKNOWN
    assert e.stale_reason is Reason.COMMIT_FAILED and e.lost and e.lost_uncertain
    # An autocommit write: unknown, with nothing left open to acknowledge.
    e = engine()
    kw["autocommit"] = True
    assert e.failed(Op.EXECUTE, S(K.WRITE), 1180, **kw) is Verdict.OUTCOME_UNKNOWN
    assert e.stale and not e.lost


def test_a_refusal_to_write_from_a_node_that_serves_nothing_moves_on() -> None:
    # 1290 answered by a Galera node that, asked, is not ready: refused before it ran.
    e = engine()
    kw: dict[str, Any] = {"sent": True, "autocommit": True, "resends": 0}
    assert e.failed(Op.EXECUTE, S(K.WRITE), 1290, role=Role.NOT_READY, **kw) is Verdict.RESEND
    assert e.stale_reason is Reason.NOT_READY


def test_a_set_up_statement_refused_by_a_node_that_stopped_serving_may_pass() -> None:
    assert Engine.connect_may_pass(ErrorKind.NOT_READY)
    assert not Engine.connect_may_pass(ErrorKind.COMMIT_UNCERTAIN)


def test_the_role_of_a_drained_node_and_of_an_answer_without_read_only() -> None:
    from resilient_dbapi.adapters._mysql import role_of, settings

    synced = settings([("wsrep_ready", "ON"), ("wsrep_local_state", "4")])
    for drained in ("ALL", "ALL_KILL"):
        node = settings(
            [("read_only", "OFF"), ("wsrep_on", "ON"), ("wsrep_reject_queries", drained)]
        )
        assert role_of(node, synced) is N
    plain = settings([("read_only", "OFF"), ("wsrep_on", "OFF"), ("wsrep_reject_queries", "NONE")])
    assert role_of(plain, None) is Role.WRITABLE
    with pytest.raises(ValueError, match="named no read_only"):
        role_of(settings([("wsrep_on", "OFF")]), None)


def test_a_statement_stopped_on_a_node_that_serves_nothing() -> None:
    # wsrep_sync_wait makes a statement wait for the cluster first; on a node that left
    # the primary component the wait fails with 1205. Asked, the node says not ready:
    # a read is sent again elsewhere, a write (perhaps begun) is of unknown outcome.
    kw: dict[str, Any] = {"sent": True, "autocommit": True, "resends": 0}
    e = engine()
    assert e.asks_role(1205)
    assert e.failed(Op.EXECUTE, S(K.READ), 1205, role=Role.NOT_READY, **kw) is Verdict.RESEND
    assert e.stale_reason is Reason.NOT_READY
    e = engine()
    assert e.failed(Op.EXECUTE, S(K.WRITE), 1205, role=Role.NOT_READY, **kw) is (
        Verdict.OUTCOME_UNKNOWN
    )
    # A lock wait that timed out on a node that serves: the caller's, as before.
    e = engine()
    assert e.failed(Op.EXECUTE, S(K.WRITE), 1205, role=Role.WRITABLE, **kw) is Verdict.RAISE
    assert not e.stale
    alone = Engine([RetryOnError()], MYSQL_ERRORS)
    alone.connected(100.0)
    assert not alone.asks_role(1205)


def test_only_an_errors_own_timeout_makes_its_host_silent() -> None:
    from resilient_dbapi._connector import timed_out

    def raised(make: Any) -> BaseException:
        try:
            make()
        except BaseException as exc:
            return exc
        raise AssertionError("nothing raised")

    def own() -> None:
        try:
            raise TimeoutError("timed out")
        except TimeoutError as exc:
            raise pymysql.err.OperationalError(2013, "Lost connection (timed out)") from exc

    assert timed_out(raised(own))

    def reset_while_handling_a_timeout() -> None:
        try:
            own()
        except pymysql.err.OperationalError:
            try:
                raise ConnectionResetError()
            except ConnectionResetError as reset:
                raise pymysql.err.OperationalError(2013, "Lost connection") from reset

    # Another connection's timeout, being handled when this one was reset: not silence.
    assert not timed_out(raised(reset_while_handling_a_timeout))
    assert not timed_out(pymysql.err.OperationalError(2013, "Lost connection"))
