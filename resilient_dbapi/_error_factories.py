"""The errors the safety rules raise, built the way each driver builds its own (so they
are instances of the driver's classes, with its code in ``args[0]``)."""

from __future__ import annotations

from typing import Any

from .adapters import Inspector
from .engine import Engine, Op, Reason, Verdict
from .error_kinds import Code, ErrorKind
from .errors import (
    ConcurrentUseError,
    OutcomeUnknownError,
    SessionLostError,
    TLSDowngradeError,
    TransactionLostError,
    bind_error,
)
from .events import Observer, OutcomeUnknown, SessionLost, TransactionLost

__all__: list[str] = []


def describe_error(exc: BaseException) -> str:
    args = exc.args
    if len(args) >= 2:
        return f"{args[0]}: {args[1]}"
    return str(exc) or type(exc).__name__


def new_error(
    adapter: Inspector, cls: type[Exception], code: Any, message: str, ours: type | None = None
) -> Exception:
    """An error built the way the adapter's driver builds its own; with ``ours`` (a
    :class:`ResilientError` subclass), an instance of both ``ours`` and ``cls``."""
    if ours is not None:
        cls = bind_error(ours, cls)
    error = adapter.make_error(cls, code, message)
    if ours is not None:
        error.__dict__["_code"] = code
    return error


def closed_error(adapter: Inspector, deferred: bool = False) -> Exception:
    if deferred:
        why = "this connection was made with defer_connect=True: call connect() first"
    else:
        why = "this connection was closed with close(); open a new one"
    return new_error(adapter, adapter.interface_error, 0, f"resilient_dbapi: {why}")


def socket_gone_error(adapter: Inspector) -> Exception:
    return new_error(
        adapter,
        adapter.operational_error,
        adapter.gone_code,
        "the connection was opened on a socket given to connect(sock) and is lost; "
        "resilient_dbapi knows no other way to that server and does not replace it: "
        "call connect() again (with a new socket, or none for the connect arguments)",
    )


def lost_again_error(adapter: Inspector, engine: Engine) -> Exception:
    if engine.lost_uncertain:
        return new_error(
            adapter,
            adapter.operational_error,
            engine.lost_code,
            "the connection was lost earlier with writes whose outcome is unknown; call "
            "rollback() before using the connection again",
            OutcomeUnknownError,
        )
    return new_error(
        adapter,
        adapter.operational_error,
        engine.lost_code,
        "the transaction on this connection was lost earlier; call rollback() before "
        "using the connection again",
        TransactionLostError,
    )


def tls_downgrade_error(adapter: Inspector) -> Exception:
    return new_error(
        adapter,
        adapter.operational_error,
        adapter.gone_code,
        "the new connection is not encrypted but an earlier one of this connect(), "
        "creator() or pool was: resilient_dbapi refuses it at once rather than go on in "
        "plain text (the server no longer offers TLS, or the driver treats it as "
        "optional: restore TLS on the server, or ask the driver to require it, e.g. "
        "mysqlclient's ssl_mode='VERIFY_CA')",
        TLSDowngradeError,
    )


def concurrent_use_error(adapter: Inspector, in_flight: str, what: str) -> Exception:
    return new_error(
        adapter,
        adapter.programming_error,
        0,
        f"this connection is in use by another thread or task ({in_flight} in flight); "
        f"{what} was not sent. Give each thread or task its own connection",
        ConcurrentUseError,
    )


def session_lost_before_send(
    adapter: Inspector,
    engine: Engine,
    observer: Observer,
    where: str,
    reason: Reason,
    code: Code | None,
) -> Exception:
    """The connection must be replaced (the caller gave it up), but its session held
    state no replay rebuilds."""
    lost = engine.take_lost_state()
    code = adapter.gone_code if code is None else code
    observer.emit(SessionLost(where, code, tuple(lost)))
    return new_error(
        adapter,
        adapter.operational_error,
        code,
        f"connection lost ({reason.value}) with session state that cannot be rebuilt: "
        f"{', '.join(lost)}; nothing was sent. The next statement gets a new session "
        "with the replayable settings",
        SessionLostError,
    )


def history_lost_error(adapter: Inspector, observer: Observer, where: str) -> Exception:
    """A statement asked about the session's history after the session was replaced."""
    code = adapter.gone_code
    observer.emit(SessionLost(where, code, (_HISTORY,)))
    return new_error(
        adapter,
        adapter.operational_error,
        code,
        f"the connection was replaced before this statement, which asks about {_HISTORY} "
        "(LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS(), SHOW WARNINGS, CONNECTION_ID() ...): "
        "the new session would answer for itself, not for the statements before it. "
        "Nothing was sent; the next statement runs on the new session",
        SessionLostError,
    )


_HISTORY = "the history of the session it replaced"


# A refusal's wording, by the reason the connection went: what the server did, and where
# the next connection goes.
_REFUSALS = {
    Reason.READ_ONLY: ("turned read-only", "a writable host"),
    Reason.NOT_READY: (
        "stopped serving (a Galera node outside the primary component, or not Synced)",
        "another host",
    ),
}


def replay_failed_error(
    adapter: Inspector,
    engine: Engine,
    observer: Observer,
    where: str,
    why: str,
    uncertain: bool = False,
) -> Exception:
    """A transaction lost with its connection could not be replayed (``why``): lost as
    without replay, or of unknown outcome when the replay may have left something."""
    code = engine.lost_code
    if uncertain:
        observer.emit(OutcomeUnknown(where, code))
        return new_error(
            adapter,
            adapter.operational_error,
            code,
            f"connection lost inside a transaction with writes; replaying it on a new "
            f"connection went wrong: {why}. What the replay ran may have been kept: check "
            "what was applied, then call rollback()",
            OutcomeUnknownError,
        )
    observer.emit(TransactionLost(where, code))
    return new_error(
        adapter,
        adapter.operational_error,
        code,
        f"connection lost inside a transaction with writes; replaying it on a new "
        f"connection failed: {why}. Nothing of it is committed (the server rolled back "
        "both): call rollback() and run it again",
        TransactionLostError,
    )


def verdict_error(
    verdict: Verdict,
    exc: Exception,
    op: Op,
    code: Code,
    adapter: Inspector,
    engine: Engine,
    observer: Observer,
    where: str,
) -> BaseException | None:
    """What a failed operation raises, given the engine's verdict (None: send it again;
    never called for RECOVERED, which raises nothing)."""
    if verdict is Verdict.RESEND or verdict is Verdict.REPLAY:
        return None
    if verdict is Verdict.SESSION_LOST:
        lost_list = engine.take_lost_state()
        observer.emit(SessionLost(where, code, tuple(lost_list)))
        return new_error(
            adapter,
            adapter.operational_error,
            code,
            f"connection lost ({describe_error(exc)}) with session state that cannot be "
            f"rebuilt: {', '.join(lost_list)}; the statement was not sent again. The next "
            "statement gets a new session with the replayable settings",
            SessionLostError,
        )
    refused = _REFUSALS.get(engine.stale_reason) if engine.stale_reason else None
    if verdict is Verdict.TRANSACTION_LOST and refused is not None:
        observer.emit(TransactionLost(where, code))
        return new_error(
            adapter,
            adapter.operational_error,
            code,
            f"the server {refused[0]} inside a transaction with writes "
            f"({describe_error(exc)}); resilient_dbapi closed the connection, so the server "
            "rolled the transaction back: call rollback() and run it again (the next "
            f"connection goes to {refused[1]})",
            TransactionLostError,
        )
    if verdict is Verdict.TRANSACTION_LOST:
        observer.emit(TransactionLost(where, code))
        return new_error(
            adapter,
            adapter.operational_error,
            code,
            f"connection lost inside a transaction with writes ({describe_error(exc)}); the "
            "server rolled the transaction back: call rollback() and run it again",
            TransactionLostError,
        )
    if verdict is Verdict.OUTCOME_UNKNOWN and refused is not None:
        observer.emit(OutcomeUnknown(where, code))
        if engine.errors.kind(code) is ErrorKind.STATEMENT_ABORTED:
            return new_error(
                adapter,
                adapter.operational_error,
                code,
                f"the server {refused[0]} while the statement waited "
                f"({describe_error(exc)}); whether it began cannot be told, so it was not "
                "sent again: check what was applied",
                OutcomeUnknownError,
            )
        return new_error(
            adapter,
            adapter.operational_error,
            code,
            f"the server {refused[0]} during a statement it may have applied in part "
            f"(several statements, a procedure, executemany's rows, or DDL after writes: "
            f"{describe_error(exc)}); it was not sent again: check what was applied",
            OutcomeUnknownError,
        )
    if verdict is Verdict.OUTCOME_UNKNOWN and engine.stale_reason is Reason.COMMIT_FAILED:
        observer.emit(OutcomeUnknown(where, code))
        return new_error(
            adapter,
            adapter.operational_error,
            code,
            f"the server failed while committing ({describe_error(exc)}): it may or may not "
            "have been applied (a Galera node that lost the primary component while "
            "replicating: the other nodes may have applied it), and was not sent again; "
            "the connection was replaced",
            OutcomeUnknownError,
        )
    if verdict is Verdict.OUTCOME_UNKNOWN:
        what = "COMMIT" if op is Op.COMMIT else "a write"
        observer.emit(OutcomeUnknown(where, code))
        return new_error(
            adapter,
            adapter.operational_error,
            code,
            f"connection lost after {what} was sent ({describe_error(exc)}); it may or may "
            "not have been applied, and was not sent again",
            OutcomeUnknownError,
        )
    # The driver's own error; state the session lost is reported (SessionLostError)
    # when the connection is replaced at the next checkout.
    return exc
