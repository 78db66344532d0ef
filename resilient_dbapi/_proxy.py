"""What the sync and asyncio proxies share that does no I/O: argument checks, the
errors the safety rules raise, and the connector's retry decision.

The proxies themselves (``_connection_async.py`` and its generated sync twin) only carry
these decisions out, awaiting or not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from . import adapters
from .adapters import Liveness
from .engine import Engine, Op, Reason, Verdict
from .errors import (
    ConcurrentUseError,
    OutcomeUnknownError,
    SessionLostError,
    TransactionLostError,
    bind_error,
)
from .events import GaveUp, Observer, OutcomeUnknown, Retrying, SessionLost, TransactionLost
from .policies import Policy, default_policies

__all__: list[str] = []


class Recovered(Exception):
    """Internal: the failed operation lost nothing; report success."""


def always_alive() -> Liveness:
    return Liveness.ALIVE


def describe_error(exc: BaseException) -> str:
    args = exc.args
    if len(args) >= 2:
        return f"{args[0]}: {args[1]}"
    return str(exc) or type(exc).__name__


def type_name(value: object) -> str:
    """A value's type for an error message: never its contents, which may hold secrets."""
    return f"a {type(value).__module__}.{type(value).__qualname__}".replace("a builtins.", "a ")


# -- the errors the safety rules raise ----------------------------------------------


def new_error(
    adapter: Any, cls: type[Exception], code: Any, message: str, ours: type | None = None
) -> Exception:
    """An error built the way the adapter's driver builds its own; with ``ours`` (a
    :class:`ResilientError` subclass), an instance of both ``ours`` and ``cls``."""
    if ours is not None:
        cls = bind_error(ours, cls)
    make = getattr(adapter, "make_error", None)  # optional for registered adapters
    error: Exception = cls(code, message) if make is None else make(cls, code, message)
    if ours is not None:
        error.__dict__["_code"] = code
    return error


def closed_error(adapter: Any) -> Exception:
    return new_error(
        adapter,
        adapter.interface_error,
        0,
        "resilient_dbapi: this connection was closed with close(); open a new one",
    )


def lost_again_error(adapter: Any, engine: Engine) -> Exception:
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


def concurrent_use_error(adapter: Any, in_flight: str, what: str) -> Exception:
    return new_error(
        adapter,
        adapter.programming_error,
        0,
        f"this connection is in use by another thread or task ({in_flight} in flight); "
        f"{what} was not sent. Give each thread or task its own connection",
        ConcurrentUseError,
    )


def session_lost_before_send(
    adapter: Any, engine: Engine, observer: Observer, where: str, reason: Reason, code: int | None
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


def verdict_error(
    verdict: Verdict,
    exc: Exception,
    op: Op,
    code: int,
    adapter: Any,
    engine: Engine,
    observer: Observer,
    where: str,
) -> BaseException | None:
    """What a failed operation raises, given the engine's verdict (None: send it again)."""
    if verdict is Verdict.RESEND:
        return None
    if verdict is Verdict.RECOVERED:
        return Recovered()
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


# -- connecting ---------------------------------------------------------------------


class ConnectorBase:
    """Holds how to open physical connections (secrets included) and never shows it."""

    __slots__ = ("args", "driver_connect", "kwargs")

    def __init__(
        self, driver_connect: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.driver_connect = driver_connect
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        name = getattr(self.driver_connect, "__qualname__", type(self.driver_connect).__name__)
        return f"<connector {name} (arguments hidden)>"

    @staticmethod
    def retry_wait(
        exc: Exception,
        engine: Engine,
        attempt: int,
        elapsed: float,
        observer: Observer,
        where: str,
    ) -> float | None:
        """Seconds to wait before connecting again after ``exc``, or None to raise it."""
        adapter = adapters.adapter_for_error(exc)
        if adapter is None:
            return None
        code = adapter.error_code(exc)
        table = engine.errors if engine.errors.codes else adapter.errors
        wait = engine.connect_failed(table.kind(code), attempt, elapsed)
        if wait is None:
            if attempt > 1:
                observer.emit(GaveUp(where, attempt, code))
            return None
        observer.emit(Retrying(where, "connect", attempt, wait, code))
        return wait


def wrong_connect_error(made: object, *, want_awaitable: bool) -> TypeError:
    """A sync connect callable given to the asyncio proxy, or the other way round; what
    it made is closed (or its coroutine discarded) first."""
    if want_awaitable:
        with contextlib.suppress(Exception):
            made.close()  # type: ignore[attr-defined]
        return TypeError(
            f"driver_connect returned {type_name(made)}, not an awaitable: "
            "resilient_dbapi.aio.connect() needs an asyncio connect callable such as "
            "aiomysql.connect (use resilient_dbapi.connect() for a sync driver)"
        )
    close = getattr(made, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()  # a coroutine never awaited would warn
    return TypeError(
        f"driver_connect returned {type_name(made)}, an awaitable: resilient_dbapi.connect() "
        "needs a sync connect callable such as pymysql.connect (use "
        "resilient_dbapi.aio.connect() for an asyncio driver)"
    )


def check_connection(raw: object) -> None:
    if not hasattr(raw, "cursor") or not hasattr(raw, "commit"):
        raise TypeError(
            f"driver_connect returned {type(raw).__qualname__}, which is not a DB-API "
            "connection (it needs cursor(), commit(), rollback() and close())"
        )


def resolve_policies(policies: Sequence[Policy] | str | None) -> list[Policy]:
    if policies is None:
        return default_policies()
    if isinstance(policies, str):
        from .policies import load

        return load(policies)
    if not isinstance(policies, list | tuple):
        raise TypeError(
            "policies must be None (the defaults), a profile name or path, or a list of policies "
            f"(PingOnCheckout, MaxAge, RetryOnError, ErrorTable); got {type_name(policies)}"
        )
    return list(policies)


def check_callable(driver_connect: object) -> None:
    if not callable(driver_connect):
        raise TypeError(
            "driver_connect must be a DB-API connect callable such as pymysql.connect "
            f"(or a lambda/partial returning a connection), got {type_name(driver_connect)}"
        )


def check_on_connect(on_connect: object) -> tuple[str, ...]:
    if on_connect is None:
        return ()
    if isinstance(on_connect, str) or not isinstance(on_connect, list | tuple):
        raise TypeError(
            f"on_connect must be a list of SQL statements (strings), got {type_name(on_connect)}"
        )
    for statement in on_connect:
        if not isinstance(statement, str):
            raise TypeError(f"on_connect statements must be strings, got {type_name(statement)}")
    return tuple(on_connect)


def connect_name(driver_connect: Callable[..., Any]) -> str:
    module = getattr(driver_connect, "__module__", None) or ""
    name = getattr(driver_connect, "__qualname__", type(driver_connect).__qualname__)
    return f"{module}.{name}".lstrip(".")
