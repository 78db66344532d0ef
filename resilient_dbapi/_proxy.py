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
from .classify import ErrorKind
from .engine import Engine, Op, Reason, Verdict
from .errors import (
    ConcurrentUseError,
    NoSuitableHostError,
    OutcomeUnknownError,
    SessionLostError,
    TransactionLostError,
    bind_error,
)
from .events import (
    GaveUp,
    HostPassedOver,
    Observer,
    OutcomeUnknown,
    Retrying,
    SessionLost,
    TransactionLost,
)
from .hosts import Failover, Host, HostMemory, Target
from .policies import Policy, default_policies

__all__: list[str] = []


class WrongRole(Exception):
    """Internal: a new connection's server does not have the role the target wants."""

    def __init__(self, adapter: Any, read_only: bool) -> None:
        super().__init__("read-only" if read_only else "writable")
        self.adapter = adapter
        self.read_only = read_only


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
    """What a failed operation raises, given the engine's verdict (None: send it again;
    never called for RECOVERED, which raises nothing)."""
    if verdict is Verdict.RESEND:
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
    if verdict is Verdict.TRANSACTION_LOST and engine.stale_reason is Reason.READ_ONLY:
        observer.emit(TransactionLost(where, code))
        return new_error(
            adapter,
            adapter.operational_error,
            code,
            f"the server turned read-only inside a transaction with writes "
            f"({describe_error(exc)}); resilient_dbapi closed the connection, so the server "
            "rolled the transaction back: call rollback() and run it again (the next "
            "connection goes to a writable host)",
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
    if verdict is Verdict.OUTCOME_UNKNOWN and engine.stale_reason is Reason.READ_ONLY:
        observer.emit(OutcomeUnknown(where, code))
        return new_error(
            adapter,
            adapter.operational_error,
            code,
            f"the server turned read-only during a statement it may have applied in part "
            f"(several statements, a procedure, executemany's rows, or DDL after writes: "
            f"{describe_error(exc)}); it was not sent again: check what was applied",
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


# -- connecting ---------------------------------------------------------------------


class ConnectorBase:
    """Holds how to open physical connections (secrets included) and never shows it;
    with several hosts, also which one the connection is on."""

    __slots__ = ("args", "current", "driver_connect", "kwargs", "memory")

    def __init__(
        self,
        driver_connect: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        memory: HostMemory | None = None,
    ) -> None:
        self.driver_connect = driver_connect
        self.args = args
        self.kwargs = kwargs
        self.memory = memory
        self.current: Host | None = None

    def __repr__(self) -> str:
        name = getattr(self.driver_connect, "__qualname__", type(self.driver_connect).__name__)
        return f"<connector {name} (arguments hidden)>"

    def plan(self, now: float) -> list[Host | None]:
        """The hosts to try in one round (``[None]``: the connect arguments' own)."""
        if self.memory is None:
            return [None]
        return list(self.memory.order(self.current, now))

    def arguments(self, host: Host | None) -> dict[str, Any]:
        if host is None:
            return self.kwargs
        kwargs = dict(self.kwargs)
        kwargs["host"] = host.host
        if host.port is not None:
            kwargs["port"] = host.port
        return kwargs

    def passed_over(
        self,
        host: Host | None,
        exc: Exception,
        engine: Engine,
        now: float,
        observer: Observer,
        outcomes: dict[Host, str],
    ) -> bool:
        """A connect to ``host`` failed with ``exc``: remember it, and say whether to go
        on with the round's next host (False: raise ``exc``, it will not pass)."""
        if host is None or self.memory is None:
            return True  # one host: retry_wait decides
        failure = connect_failure(exc, engine)
        if failure is None or not engine.connect_may_pass(failure[1]):
            return False
        code = failure[0]
        why = str(exc) if isinstance(exc, WrongRole) else "unreachable"
        self.memory.failed(host, now)
        outcomes[host] = why if code is None else f"{why} ({code})"
        observer.emit(HostPassedOver(str(host), why, code))
        return True

    def arrived(self, host: Host | None) -> None:
        if host is not None and self.memory is not None:
            self.current = host
            self.memory.succeeded(host)

    def turned_read_only(self, now: float, observer: Observer, code: int | None) -> None:
        """The current host refused a write because it is read-only now: try it last."""
        if self.memory is not None and self.current is not None:
            self.memory.failed(self.current, now)
            observer.emit(HostPassedOver(str(self.current), "turned read-only", code))

    def gave_up(
        self, exc: Exception, outcomes: dict[Host, str], rounds: int, elapsed: float
    ) -> Exception:
        """The error to raise once connecting is given up: ``exc`` itself with one host;
        with several, a ``NoSuitableHostError`` saying what each host did."""
        if self.memory is None or not outcomes:
            return exc
        adapter = exc.adapter if isinstance(exc, WrongRole) else adapters.adapter_for_error(exc)
        if adapter is None:
            return exc
        target = self.memory.failover.target
        code = None if isinstance(exc, WrongRole) else adapter.error_code(exc)
        if code is None and target is Target.PRIMARY:
            read_only = [c for c, k in adapter.errors.codes.items() if k is ErrorKind.READ_ONLY]
            code = read_only[0] if read_only else None
        detail = ", ".join(f"{host} {why}" for host, why in outcomes.items())
        return new_error(
            adapter,
            adapter.operational_error,
            adapter.gone_code if code is None else code,
            f"no host suits target={target.value!r} after {rounds} round(s) in "
            f"{elapsed:.1f} s: {detail}; nothing was sent",
            NoSuitableHostError,
        )

    def retry_wait(
        self,
        exc: Exception,
        engine: Engine,
        attempt: int,
        elapsed: float,
        observer: Observer,
        where: str,
        saw_wrong_role: bool = False,
    ) -> float | None:
        """Seconds to wait before connecting again after ``exc`` (the last error of a
        round; ``saw_wrong_role``: a host of the round was up with the wrong role), or
        None to raise it."""
        failure = connect_failure(exc, engine)
        if failure is None:
            return None
        code, kind = failure
        wait = engine.connect_failed(kind, attempt, elapsed)
        if wait is None:
            if attempt > 1:
                observer.emit(GaveUp(where, attempt, code))
            return None
        if self.memory is not None:
            wait = self.memory.failover.between_rounds(wait, saw_wrong_role)
        observer.emit(Retrying(where, "connect", attempt, wait, code))
        return wait


def connect_failure(exc: Exception, engine: Engine) -> tuple[Any, ErrorKind] | None:
    """A failed connect's driver error code and kind; None for an error of no driver."""
    if isinstance(exc, WrongRole):  # the role may change (a promotion): transient
        return None, ErrorKind.CONNECT_TRANSIENT
    adapter = adapters.adapter_for_error(exc)
    if adapter is None:
        return None
    code = adapter.error_code(exc)
    table = engine.errors if engine.errors.codes else adapter.errors
    return code, table.kind(code)


def check_failover(hosts: object, target: object, kwargs: dict[str, Any]) -> HostMemory | None:
    """``connect()``'s ``hosts=`` and ``target=``, checked; None without them."""
    if hosts is None:
        if target is not None:
            raise ValueError(
                "target= needs hosts=: give the servers to choose from, e.g. "
                "hosts=[('db1', 3306), ('db2', 3306)]"
            )
        return None
    clash = sorted({"host", "port", "unix_socket", "hostaddr"} & kwargs.keys())
    if clash:
        raise ValueError(
            f"give hosts= or {'= and '.join(clash)}=, not both: hosts= lists every server "
            "with its port"
        )
    return HostMemory(Failover.of(hosts, target))


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
