"""Unit tests of the engine's replay decisions (ReplayTransaction): when a lost
transaction may be replayed, what its log keeps, and what drops it. No server."""

from __future__ import annotations

import pytest

from resilient_dbapi import MYSQL_ERRORS, PingOnCheckout, ReplayTransaction, RetryOnError
from resilient_dbapi.engine import Engine, LogEntry, Op, Verdict
from resilient_dbapi.statements import (
    AUTOCOMMIT_OP,
    BEGIN_OP,
    COMMIT_OP,
    NEXT_GTID,
    NEXT_GTID_SEQ_NO,
    NEXT_INSERT_ID,
    ONE_SHOT,
    SESSION_OP,
    Statement,
    statement,
)
from resilient_dbapi.statements import StatementKind as K

DIGEST = b"d" * 16
UPDATE = statement("UPDATE acc SET n = n - 1 WHERE id = 1")
SELECT = statement("SELECT n FROM acc WHERE id = 1")


ON = ReplayTransaction()


def engine(replay: ReplayTransaction | None = ON) -> Engine:
    policies = [PingOnCheckout(), RetryOnError(), *([replay] if replay else [])]
    e = Engine(policies, MYSQL_ERRORS)
    e.tracking(True, all_roll_back=True)
    e.connected(100.0, wait_timeout=None)
    return e


def run(e: Engine, stmt: Statement, now: float = 101.0, *, entry: bool = True) -> None:
    """``stmt`` succeeded inside the open transaction, and was logged."""
    e.done(stmt, True, False, now)
    method = "begin" if stmt is BEGIN_OP else "execute"
    made = LogEntry(stmt, method, "q", None, DIGEST) if entry else None
    e.logged(stmt, made, 10, now)


def lose(e: Engine, op: Op = Op.EXECUTE, **facts: object) -> Verdict:
    """The connection died before ``UPDATE`` was sent."""
    return e.failed(op, UPDATE, 2013, sent=False, autocommit=False, resends=0, **facts)  # type: ignore[arg-type]


def test_a_lost_transaction_with_a_log_is_replayed_not_lost() -> None:
    e = engine()
    run(e, BEGIN_OP)
    run(e, SELECT)
    run(e, UPDATE)
    assert lose(e) is Verdict.REPLAY
    assert e.lost and e.stale  # until the replay succeeded
    assert [entry.statement for entry in e.replaying or ()] == [BEGIN_OP, SELECT, UPDATE]
    e.connected(102.0)
    for entry in e.replaying or ():
        e.done(entry.statement, True, False, 102.5)
    e.replayed()
    assert e.replaying is None and e.txn_writes and len(e.txn_log) == 3 and not e.lost


def test_without_the_policy_the_same_loss_is_a_lost_transaction() -> None:
    e = engine(None)
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e) is Verdict.TRANSACTION_LOST
    assert e.txn_log == []


@pytest.mark.parametrize(
    "facts",
    [{"closing": True}, {"autocommit_known": False}],
    ids=["closing", "autocommit only guessed"],
)
def test_no_replay_for_a_caller_closing_or_an_unknown_autocommit(facts: dict[str, object]) -> None:
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e, **facts) is not Verdict.REPLAY
    assert e.lost


def test_an_interruption_or_a_commit_is_never_replayed() -> None:
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert e.interrupted(Op.EXECUTE, UPDATE, autocommit=False) is Verdict.TRANSACTION_LOST
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    verdict = e.failed(Op.COMMIT, COMMIT_OP, 2013, sent=True, autocommit=False, resends=0)
    assert verdict is Verdict.OUTCOME_UNKNOWN


@pytest.mark.parametrize(
    "opening", [BEGIN_OP, statement("START TRANSACTION")], ids=["begin()", "text"]
)
def test_replays_of_one_transaction_are_bounded(opening: Statement) -> None:
    """However the transaction was opened: a replayed ``START TRANSACTION`` (which
    commits what was open) must not reset the count."""
    e = engine()
    run(e, opening)
    run(e, UPDATE)
    verdicts = []
    for attempt in range(5):
        verdict = lose(e)
        verdicts.append(verdict)
        if verdict is not Verdict.REPLAY:
            break
        e.connected(110.0 + attempt)
        for entry in e.replaying or ():
            e.done(entry.statement, True, False, 110.5 + attempt)
        e.replayed()
    assert verdicts == [Verdict.REPLAY] * 3 + [Verdict.TRANSACTION_LOST]


@pytest.mark.parametrize(
    "text",
    [
        "UPDATE acc SET n = n - 1, at = NOW() WHERE id = 1",
        "INSERT INTO t (uid) VALUES (UUID())",
        "SET SESSION sql_mode = 'ANSI'",
        "CREATE TEMPORARY TABLE tmp (x INT)",
        "UPDATE acc SET n = f(n)",
    ],
)
def test_a_statement_a_replay_could_not_reproduce_drops_the_log(text: str) -> None:
    e = engine()
    run(e, BEGIN_OP)
    run(e, statement(text))
    run(e, UPDATE)
    assert not e.txn_log_ok and e.txn_log == []
    assert lose(e) is not Verdict.REPLAY


def test_an_entry_the_proxy_could_not_digest_drops_the_log() -> None:
    e = engine()
    run(e, BEGIN_OP)
    run(e, SELECT, entry=False)
    assert lose(e) is not Verdict.REPLAY


@pytest.mark.parametrize(
    ("policy", "steps"),
    [
        (ReplayTransaction(max_statements=2), 3),
        (ReplayTransaction(max_bytes=25), 3),
        (ReplayTransaction(max_seconds=5.0), 1),
    ],
    ids=["statements", "bytes", "seconds"],
)
def test_past_a_limit_the_log_is_dropped(policy: ReplayTransaction, steps: int) -> None:
    e = engine(policy)
    run(e, BEGIN_OP, 101.0)
    for _ in range(steps):
        run(e, UPDATE, 101.0 if steps > 1 else 107.0)
    assert lose(e) is Verdict.TRANSACTION_LOST


def test_the_log_starts_again_with_the_next_transaction() -> None:
    e = engine(ReplayTransaction(max_statements=2))
    run(e, BEGIN_OP)
    run(e, UPDATE)
    run(e, UPDATE)  # the third: dropped
    e.done(COMMIT_OP, False, True, 102.0)
    assert e.txn_log_ok and e.txn_log == []
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e) is Verdict.REPLAY


def _one_shot(e: Engine, sql: str = "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE") -> None:
    """``sql`` succeeded outside a transaction, as the proxy reports a setting."""
    made = statement(sql)
    assert made.kind is K.SESSION and made.key is None
    e.done(made, False, True, 101.0)
    e.settings_made(made, sql, None)
    e.logged(made, None, 10, 101.0)


def test_a_one_shot_set_transaction_holds_the_session_until_a_transaction_ends() -> None:
    """Not journaled: until the server spends it, no replay (nor a planned new
    connection) could rebuild it."""
    e = engine()
    _one_shot(e)
    assert ONE_SHOT in e.unrestorable
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e) is Verdict.TRANSACTION_LOST
    e = engine()
    _one_shot(e)
    e.done(COMMIT_OP, False, True, 102.0)
    assert ONE_SHOT not in e.unrestorable
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e) is Verdict.REPLAY


def test_a_one_shot_set_transaction_outlives_what_does_not_spend_it() -> None:
    """A read, a setting, a write that ended no transaction the engine saw, or the driver
    reporting no transaction: the setting may still be pending on the server."""
    e = engine()
    _one_shot(e)
    e.done(SELECT, False, False, 101.0)
    e.done(statement("SET NAMES utf8mb4"), False, False, 101.0)
    e.done(statement("DO 1"), False, False, 101.0)
    e.done(statement("SET NAMES latin1"), False, False, 101.0)
    assert ONE_SHOT in e.unrestorable
    run(e, UPDATE)
    assert lose(e) is Verdict.TRANSACTION_LOST


@pytest.mark.parametrize(
    "sql",
    [
        "SET TRANSACTION READ ONLY",
        "/* c */ SET TRANSACTION READ ONLY",
        "SET /* c */ TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET @@tx_read_only = 1",
        "SET @@transaction_isolation = 'READ-COMMITTED'",
    ],
)
def test_every_form_of_the_one_shot_is_held_not_journaled(sql: str) -> None:
    e = engine()
    _one_shot(e, sql)
    assert ONE_SHOT in e.unrestorable and not e.journal


def test_a_session_form_of_the_same_setting_is_journaled() -> None:
    for sql in ("SET SESSION TRANSACTION READ ONLY", "SET @@session.tx_read_only = 1"):
        made = statement(sql)
        assert made.key is not None and ONE_SHOT not in made.effects, sql


def test_a_one_shot_with_other_settings_holds_the_session_for_good() -> None:
    """``SET @@tx_read_only = 1, NAMES utf8mb4``: none of it is journaled, so the names
    could never be rebuilt: held after the transaction too."""
    e = engine()
    _one_shot(e, "SET @@tx_read_only = 1, NAMES utf8mb4")
    e.done(COMMIT_OP, False, True, 102.0)
    assert e.unrestorable and ONE_SHOT not in e.unrestorable


@pytest.mark.parametrize("begin", ["START TRANSACTION", "BEGIN"])
def test_a_begin_sent_as_text_takes_the_one_shot_it_does_not_spend(begin: str) -> None:
    """BEGIN commits what was open (``commits``), but with nothing open it starts the
    transaction the setting shapes: held until that one ends."""
    e = engine()
    _one_shot(e, "SET TRANSACTION READ ONLY")
    run(e, statement(begin))
    run(e, SELECT)
    assert ONE_SHOT in e.unrestorable
    assert lose(e) is Verdict.TRANSACTION_LOST
    e.rolled_back()  # the caller's rollback() spends it, as without the loss
    assert ONE_SHOT not in e.unrestorable


def test_neither_autocommit_on_nor_an_implicit_commit_of_nothing_spends_it() -> None:
    e = engine()
    _one_shot(e, "SET TRANSACTION READ ONLY")
    e.done(AUTOCOMMIT_OP, False, True, 101.0)
    e.done(statement("SET autocommit = 1"), False, True, 101.0)
    e.done(statement("UNLOCK TABLES"), False, True, 101.0)
    assert ONE_SHOT in e.unrestorable
    e.done(COMMIT_OP, False, True, 101.0)
    assert ONE_SHOT not in e.unrestorable


def test_a_commit_found_dead_spends_it_as_the_commit_would_have() -> None:
    e = engine()
    _one_shot(e)
    verdict = e.failed(Op.COMMIT, COMMIT_OP, 2013, sent=False, autocommit=True, resends=0)
    assert verdict is Verdict.RECOVERED and ONE_SHOT not in e.unrestorable
    e = engine()
    _one_shot(e)
    e.failed(Op.COMMIT, AUTOCOMMIT_OP, 2013, sent=False, autocommit=True, resends=0)
    assert ONE_SHOT in e.unrestorable


def test_several_settings_with_parameters_and_a_one_shot_are_held_for_good() -> None:
    e = engine()
    sql = "SET sql_mode = %s; SET TRANSACTION READ ONLY"
    made = statement(sql)
    e.done(made, False, True, 101.0)
    e.settings_made(made, sql, ("",))
    assert not e.journal and ONE_SHOT in e.unrestorable and len(e.unrestorable) == 2
    e.done(COMMIT_OP, False, True, 102.0)
    assert e.unrestorable


def test_a_new_one_shot_is_not_released_by_what_an_earlier_one_shaped() -> None:
    """The first setting's transaction ended by autocommit(True) (the hold kept, the
    server spent it); a second setting, then START TRANSACTION: it starts the
    transaction the second shapes, whatever the first's transaction left marked."""
    e = engine()
    _one_shot(e)
    e.done(UPDATE, True, False, 101.0)
    e.done(AUTOCOMMIT_OP, False, True, 101.0)
    _one_shot(e, "SET TRANSACTION READ ONLY")
    run(e, statement("START TRANSACTION"))
    run(e, SELECT)
    assert ONE_SHOT in e.unrestorable
    assert lose(e) is Verdict.TRANSACTION_LOST


def test_a_driver_setting_without_a_key_is_no_one_shot() -> None:
    """``set_character_set()`` and ``kill()`` run as SESSION_OP: journaled apart, or
    nothing to keep; never a one-shot."""
    e = engine()
    e.done(SESSION_OP, False, True, 101.0)
    e.logged(SESSION_OP, None, 0, 101.0)
    assert not e.unrestorable
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e) is Verdict.REPLAY


def _set(e: Engine, sql: str, args: object = None) -> None:
    """``sql`` succeeded under autocommit, as the proxy reports a setting."""
    made = statement(sql)
    e.done(made, False, True, 101.0)
    e.settings_made(made, sql, args)


def _lost_idle(e: Engine) -> Verdict:
    """The connection was found dead before an insert under autocommit was sent."""
    insert = statement("INSERT INTO t (uid) VALUES ('x')")
    return e.failed(Op.EXECUTE, insert, 2013, sent=False, autocommit=True, resends=0)


def test_set_insert_id_is_replayed_until_a_write_may_have_taken_it() -> None:
    e = engine()
    _set(e, "SET insert_id = 100")
    assert list(e.journal) == ["set insert_id"] and not e.unrestorable
    e.failed(Op.EXECUTE, SELECT, 1205, sent=True, autocommit=True, resends=0)  # a read
    assert e.next_write == {"insert_id": "set insert_id"}
    e.next_value_may_be_taken()  # the proxy, after a write ran
    assert not e.journal and e.unrestorable == {NEXT_INSERT_ID}
    assert _lost_idle(e) is Verdict.SESSION_LOST


@pytest.mark.parametrize("code", [1062, 2013])
def test_a_failed_write_that_was_sent_may_have_taken_it(code: int) -> None:
    e = engine()
    _set(e, "SET insert_id = 100")
    e.failed(Op.EXECUTE, UPDATE, code, sent=True, autocommit=True, resends=0)
    assert not e.journal and NEXT_INSERT_ID in e.unrestorable
    e = engine()
    _set(e, "SET insert_id = 100")
    e.failed(Op.EXECUTE, UPDATE, 2013, sent=False, autocommit=True, resends=0)
    assert e.journal and NEXT_INSERT_ID not in e.unrestorable


def test_an_interrupted_write_may_have_taken_it() -> None:
    e = engine()
    _set(e, "SET insert_id = 100")
    e.interrupted(Op.EXECUTE, UPDATE, autocommit=True)
    assert not e.journal and NEXT_INSERT_ID in e.unrestorable


@pytest.mark.parametrize("reset", ["SET insert_id = 0", "SET @@session.insert_id = DEFAULT"])
def test_a_new_value_or_none_releases_the_hold(reset: str) -> None:
    e = engine()
    _set(e, "SET insert_id = 100")
    e.next_value_may_be_taken()
    _set(e, "SET insert_id = 200")
    assert not e.unrestorable and e.next_write == {"insert_id": "set insert_id"}
    assert e.journal["set insert_id"] == ("execute", ("SET insert_id = 200", None))
    e.next_value_may_be_taken()
    _set(e, reset)
    assert not e.unrestorable and not e.next_write
    e.next_value_may_be_taken()  # nothing waits: nothing to hold
    assert not e.unrestorable and _lost_idle(e) is Verdict.RESEND


def test_a_computed_set_insert_id_is_known_by_its_key() -> None:
    """Keyed with its text (``set insert_id <- ...``): still the next id's value."""
    e = engine()
    _set(e, "SET insert_id = @@auto_increment_offset * 100")
    assert e.next_write["insert_id"] in e.journal
    e.next_value_may_be_taken()
    assert not e.journal and NEXT_INSERT_ID in e.unrestorable
    _set(e, "SET insert_id = 0")
    assert not e.unrestorable


def test_set_insert_id_with_other_settings_is_held_for_good() -> None:
    """``SET insert_id = 100, time_zone = ...``: one entry, never journaled; a later
    value releases the id, not the other settings it was made with."""
    e = engine()
    _set(e, "SET insert_id = 99")
    _set(e, "SET insert_id = 100, time_zone = '+00:00'")
    assert not e.journal and NEXT_INSERT_ID in e.unrestorable
    _set(e, "SET insert_id = 200")
    assert e.unrestorable and NEXT_INSERT_ID not in e.unrestorable
    assert _lost_idle(e) is Verdict.SESSION_LOST


def test_set_insert_id_among_settings_with_parameters_is_held_for_good() -> None:
    e = engine()
    _set(e, "SET insert_id = 99")
    _set(e, "SET insert_id = %s; SET sql_mode = %s", (100, ""))
    assert not e.journal and NEXT_INSERT_ID in e.unrestorable


def test_set_insert_id_as_one_of_several_statements_is_journaled_alone() -> None:
    e = engine()
    _set(e, "SET insert_id = 100; SET time_zone = '+00:00'")
    assert list(e.journal) == ["set insert_id", "set time_zone"] and not e.unrestorable
    e.next_value_may_be_taken()
    assert list(e.journal) == ["set time_zone"] and NEXT_INSERT_ID in e.unrestorable


def test_a_transaction_whose_write_may_have_taken_it_is_not_replayed() -> None:
    e = engine()
    _set(e, "SET insert_id = 100")
    run(e, BEGIN_OP)
    run(e, UPDATE)
    e.next_value_may_be_taken()
    assert lose(e) is Verdict.TRANSACTION_LOST


def test_set_gtid_seq_no_is_held_from_the_start() -> None:
    """Never journaled (a replay may be refused, review of bea2c95): held until set
    again; with SET insert_id in one statement, both held, released one by one."""
    e = engine()
    _set(e, "SET gtid_seq_no = 100")
    assert not e.journal and e.unrestorable == {NEXT_GTID_SEQ_NO} and not e.next_write
    assert _lost_idle(e) is Verdict.SESSION_LOST
    e = engine()
    _set(e, "SET insert_id = 5, gtid_seq_no = 101")
    assert not e.journal and e.unrestorable == {NEXT_INSERT_ID, NEXT_GTID_SEQ_NO}
    _set(e, "SET gtid_seq_no = 0")
    assert e.unrestorable == {NEXT_INSERT_ID}
    _set(e, "SET insert_id = 0")
    assert not e.unrestorable


def test_a_new_value_keeps_an_entry_another_waiting_value_shares() -> None:
    """Review of bea2c95: ``SET insert_id = 5, insert_id = 7`` then ``SET insert_id = 9``
    pops the first entry; an entry one of two variables still points to stays, replayed
    before the newer one."""
    e = engine()
    e.record("set insert_id,other", ("execute", ("SET insert_id = 5, other = 1", None)))
    e.next_write = {"insert_id": "set insert_id,other", "other": "set insert_id,other"}
    _set(e, "SET insert_id = 9")
    assert list(e.journal) == ["set insert_id,other", "set insert_id"]
    assert e.next_write == {"other": "set insert_id,other", "insert_id": "set insert_id"}


def test_several_settings_sent_with_parameters_are_not_dropped_by_a_later_one() -> None:
    """Review of bea2c95: journaled whole, they were keyed by the first one's name, and a
    later ``SET sql_mode`` replaced the entry: the time zone was lost from the journal."""
    e = engine()
    _set(e, "SET sql_mode = %s; SET time_zone = '+00:00'", ("ANSI",))
    _set(e, "SET sql_mode = ''")
    texts = [payload[0] for _, payload in e.journal.values()]
    assert texts == ["SET sql_mode = %s; SET time_zone = '+00:00'", "SET sql_mode = ''"]


def test_set_gtid_next_is_held_at_once_until_automatic() -> None:
    """A read takes it as a write does: never journaled, held until 'AUTOMATIC'."""
    e = engine()
    _set(e, "SET gtid_next = '3e11fa47-71ca-11e1-9e33-c80aa9429562:23'")
    assert not e.journal and e.unrestorable == {NEXT_GTID} and not e.next_write
    assert _lost_idle(e) is Verdict.SESSION_LOST
    e = engine()
    _set(e, "SET gtid_next = '3e11fa47-71ca-11e1-9e33-c80aa9429562:23'")
    _set(e, "SET gtid_next = 'AUTOMATIC'")
    assert not e.unrestorable and _lost_idle(e) is Verdict.RESEND


def test_a_transaction_opened_past_the_proxy_is_not_replayed() -> None:
    e = engine()
    e.driver_transaction(True)
    run(e, UPDATE)
    assert lose(e) is not Verdict.REPLAY


def test_a_chained_commit_never_lets_a_committed_statement_run_again() -> None:
    """COMMIT AND CHAIN (or completion_type = CHAIN) commits the log's statements and
    opens the next transaction at once, with no BEGIN a replay could repeat: the log
    starts over, and that transaction is not replayed."""
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    chain = statement("COMMIT AND CHAIN")
    e.done(chain, True, False, 102.0)
    e.logged(chain, LogEntry(chain, "execute", "COMMIT AND CHAIN", None, DIGEST), 16, 102.0)
    assert e.txn_writes and e.txn_log == []
    run(e, UPDATE)
    assert lose(e) is Verdict.TRANSACTION_LOST


def test_a_transaction_the_server_rolled_back_is_forgotten() -> None:
    """A deadlock rolls the transaction back (the caller hears 1213): none of its
    statements may run again in the next transaction's replay."""
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    deadlock = e.failed(Op.EXECUTE, UPDATE, 1213, sent=True, autocommit=False, resends=0)
    assert deadlock is Verdict.RAISE and e.txn_log == []
    run(e, BEGIN_OP)
    run(e, SELECT)
    assert lose(e) is Verdict.REPLAY
    assert [entry.statement for entry in e.replaying or ()] == [BEGIN_OP, SELECT]


def test_a_write_that_failed_inside_the_transaction_drops_the_log() -> None:
    """executemany's rows before the failing one stay in the transaction, and the log has
    none of them."""
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    many = statement("INSERT INTO t (uid) VALUES (%s)")
    duplicate = e.failed(Op.EXECUTEMANY, many, 1062, sent=True, autocommit=False, resends=0)
    assert duplicate is Verdict.RAISE and e.txn_writes
    run(e, UPDATE)
    assert lose(e) is Verdict.TRANSACTION_LOST


def test_rollback_after_a_loss_forgets_the_log() -> None:
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e, closing=True) is Verdict.TRANSACTION_LOST
    e.rolled_back()
    assert e.txn_log == [] and e.replaying is None and e.txn_log_ok


def test_a_lost_statement_asking_the_sessions_history_is_never_replayed() -> None:
    """``LAST_INSERT_ID()`` after a replay would read the new session's."""
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    history = statement("INSERT INTO child (pid) VALUES (LAST_INSERT_ID())")
    assert history.history
    verdict = e.failed(Op.EXECUTE, history, 2013, sent=False, autocommit=False, resends=0)
    assert verdict is Verdict.TRANSACTION_LOST


def test_until_the_replay_succeeds_the_transaction_counts_as_lost() -> None:
    """Between the verdict and the replay (a close() from another thread, a commit()),
    nothing may take the transaction for an empty one."""
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e) is Verdict.REPLAY
    assert e.lost and e.replaying is not None
    e.rolled_back()  # the caller gave it up: the pending replay goes with it
    assert not e.lost and e.replaying is None and e.txn_log == []


def test_a_failed_replay_is_lost_or_of_unknown_outcome() -> None:
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e) is Verdict.REPLAY
    e.replay_failed()
    assert e.lost and not e.lost_uncertain and e.stale and e.lost_code == 2013
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e) is Verdict.REPLAY
    e.replay_failed(uncertain=True)
    assert e.lost and e.lost_uncertain


def test_a_driver_whose_results_cannot_be_compared_never_replays() -> None:
    e = engine()
    e.driver_known(e.errors, False, "wait_timeout", replays=False)
    assert e.replay is None
    run(e, BEGIN_OP)
    run(e, UPDATE)
    assert lose(e) is Verdict.TRANSACTION_LOST


def test_a_commit_found_dead_before_it_was_sent_is_replayed_one_that_may_have_been_is_not() -> None:
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    unsent = e.failed(Op.COMMIT, COMMIT_OP, 2006, sent=False, autocommit=False, resends=0)
    assert unsent is Verdict.REPLAY
    e = engine()
    run(e, BEGIN_OP)
    run(e, UPDATE)
    sent = e.failed(Op.COMMIT, COMMIT_OP, 2013, sent=True, autocommit=False, resends=0)
    assert sent is Verdict.OUTCOME_UNKNOWN


def test_the_short_path_keeps_what_logged_keeps_and_refuses_what_it_refuses() -> None:
    """``log_statement`` (the proxy's common case) appends only where ``logged`` would,
    and hands anything else to it: a BEGIN inside the transaction, an unreplayable
    statement, past each limit; run side by side, the two engines agree."""
    now = 101.0
    small = ReplayTransaction(max_statements=4, max_bytes=40, max_seconds=5.0)
    cases: list[tuple[Statement, int, float]] = [
        (SELECT, 10, now),
        (UPDATE, 10, now),
        (statement("BEGIN"), 10, now),  # commits what was open: a new log
        (statement("UPDATE acc SET t = NOW() WHERE id = 1"), 10, now),  # unreplayable
        (SELECT, 10, now),
        (UPDATE, 30, now),  # past max_bytes
        (SELECT, 10, now + 10),  # past max_seconds
    ]
    for stop in range(1, len(cases) + 1):
        short, full = engine(small), engine(small)
        for e in (short, full):
            run(e, BEGIN_OP)
        for stmt, size, at in cases[:stop]:
            for e in (short, full):
                e.done(stmt, True, False, at)
            entry = LogEntry(stmt, "execute", "q", None, DIGEST)
            if short.txn_writes and short.txn_log_ok:  # what the proxy checks first
                short.log_statement(stmt, entry, size, at)
            else:
                short.logged(stmt, entry, size, at)
            full.logged(stmt, entry, size, at)
        assert (short.txn_log, short.txn_log_ok, short.txn_bytes, short.txn_started) == (
            full.txn_log,
            full.txn_log_ok,
            full.txn_bytes,
            full.txn_started,
        ), cases[stop - 1]
    # And the limit on statements: the fifth is refused.
    e = engine(small)
    run(e, BEGIN_OP)
    for _ in range(4):
        e.done(SELECT, True, False, now)
        e.log_statement(SELECT, LogEntry(SELECT, "execute", "q", None, DIGEST), 1, now)
    assert not e.txn_log_ok and e.txn_log == []
