"""How physical connections are opened, without the I/O: the hosts of a round, what a
failed connect means for the next host and the next round, and the arguments checked for
them. ``Connector.open`` in the ``_opening`` twins carries this out, awaiting or not."""

from __future__ import annotations

import contextlib
import copy
import inspect
import re
import socket
import ssl
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeGuard, TypeVar

from . import adapters
from ._arguments import (
    check_callable,
    check_connection,
    check_credentials,
    check_on_connect,
    connect_name,
    resolve_policies,
    type_name,
)
from ._error_factories import new_error
from .adapters import Inspector
from .engine import Engine, ServerFacts, TLSFloor
from .error_kinds import Code, ErrorKind, ErrorTable
from .errors import NoSuitableHostError, TLSDowngradeError
from .events import GaveUp, HostPassedOver, Listener, Observer, Retrying, check_listeners
from .hosts import Failover, Host, HostMemory, HostProbe, Role, Target
from .policies import Policy

__all__: list[str] = []

A = TypeVar("A", bound=Inspector)


@dataclass(frozen=True, slots=True)
class Request:
    """What ``connect()`` or ``creator()`` was asked for, checked once: everything a new
    logical connection is made from, and what its connections share (which hosts
    failed lately, whether TLS is required)."""

    driver_connect: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    policies: tuple[Policy, ...]
    on_connect: tuple[str, ...]
    listeners: tuple[Listener, ...]
    memory: HostMemory | None
    # ``defer_connect=True`` (PyMySQL's): the first physical connection waits for the
    # caller's ``connect()``; never passed on, or every replacement would wait too.
    deferred: bool = False
    # The autocommit mode each new connection's set-up sets in its first statement,
    # taken out of the driver's arguments (None: left to the driver).
    autocommit: bool | None = None
    # Called before every physical connect for the arguments that change (a rotated
    # password, a short-lived token); see ConnectorBase.with_credentials.
    credentials: Callable[..., Any] | None = None
    # The background probe of the hosts, when asked for (see HostProbe and Prober).
    probe: HostProbe | None = None
    tls_floor: TLSFloor = field(default_factory=TLSFloor, compare=False)
    # What its connections learned of the server (see ServerFacts).
    facts: ServerFacts = field(default_factory=ServerFacts, compare=False)

    @classmethod
    def checked(
        cls,
        driver_connect: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policies: Sequence[Policy] | str | None,
        on_connect: Sequence[str] | None,
        listeners: Sequence[Listener] | None,
        hosts: object,
        target: str | None,
        credentials: object = None,
        probe: object = None,
    ) -> Request:
        """The arguments of ``connect()``/``creator()``; a wrong one raises, naming what
        is allowed (the policies themselves are checked by :meth:`engine`)."""
        check_callable(driver_connect)
        # Taken only when asked for: defer_connect=False is the driver's (or its error).
        deferred = kwargs.get("defer_connect") is True
        if deferred:
            kwargs = {k: v for k, v in kwargs.items() if k != "defer_connect"}
        driver_kwargs, autocommit = adapters.take_autocommit(
            driver_connect, args, adapters.connect_kwargs(driver_connect, kwargs)
        )
        request = cls(
            driver_connect,
            args,
            driver_kwargs,
            tuple(resolve_policies(policies)),
            check_on_connect(on_connect),
            check_listeners(listeners),
            check_failover(hosts, target, kwargs),
            deferred,
            autocommit,
            check_credentials(credentials),
            check_probe(probe, hosts),
        )
        return request

    @property
    def name(self) -> str:
        return connect_name(self.driver_connect)

    @property
    def where(self) -> str:
        """Where the first connection goes, for events and logs: the driver's package and
        the host (never another argument: they may hold secrets)."""
        driver = self.name.split(".")[0]
        host = self.kwargs.get("host") or self.kwargs.get("unix_socket")
        if not isinstance(host, str) or not host:
            return driver
        port = self.kwargs.get("port")
        return f"{driver} {host}:{port}" if isinstance(port, int) else f"{driver} {host}"

    def engine(self) -> Engine:
        """A new logical connection's engine."""
        failover = self.memory.failover if self.memory is not None else None
        return Engine(
            list(self.policies),
            ErrorTable(),
            failover=failover,
            tls_floor=self.tls_floor,
            facts=self.facts,
        )


def role_wanted(engine: Engine) -> Target | None:
    """The role a new connection's server must have, when one is asked for."""
    failover = engine.failover
    if failover is None or failover.target is Target.ANY:
        return None
    return failover.target


def first_adapter(raw: object, engine: Engine, adapter_for: Callable[[Any], A]) -> A:
    """The adapter of a logical connection's first driver connection, which the engine
    learns the driver's errors and habits from."""
    check_connection(raw)
    adapter = adapter_for(raw)
    engine.driver_known(adapter.errors, adapter.in_process, adapter.idle_setting, adapter.replays)
    target = role_wanted(engine)
    if target is not None and not adapter.reads_role:
        raise TypeError(
            f"target={target.value!r} needs each server's role, which "
            f"resilient_dbapi cannot read through {adapter.name}; use target='any'"
        )
    return adapter


class Hidden:
    """Connect arguments held in a local variable: a traceback that prints locals (an
    error tracker's) shows no password."""

    __slots__ = ("value",)

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<connect arguments hidden>"


class WrongRole(Exception):
    """Internal: a new connection's server does not have the role the target wants."""

    def __init__(self, adapter: Inspector, role: Role) -> None:
        super().__init__(role.value)
        self.adapter = adapter
        self.role = role


class ConnectorBase:
    """Holds how to open physical connections (secrets included) and never shows it;
    with several hosts, also which one the connection is on."""

    __slots__ = (
        "args",
        "arrived_at",
        "autocommit",
        "carried",
        "credentials",
        "current",
        "driver_connect",
        "kwargs",
        "memory",
        "probe_hold",
        "seen",
    )

    def __init__(
        self,
        driver_connect: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        memory: HostMemory | None = None,
        autocommit: bool | None = None,
        credentials: Callable[..., Any] | None = None,
    ) -> None:
        self.driver_connect = driver_connect
        self.args = args
        self.kwargs = kwargs
        self.memory = memory
        self.autocommit = autocommit  # see Request.autocommit
        self.credentials = credentials  # see Request.credentials
        self.current: Host | None = None
        self.seen = 0  # the host memory's generation when this connection last looked
        self.arrived_at = 0.0  # when it arrived on its host (which proved it reachable)
        # For the next connection only: what the one it replaces hands over (carry_over).
        self.carried: dict[str, Any] = {}
        # Lets go of the creator's background probe when the connection closes.
        self.probe_hold: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        name = getattr(self.driver_connect, "__qualname__", type(self.driver_connect).__name__)
        return f"<connector {name} (arguments hidden)>"

    def plan(self, now: float) -> list[Host | None]:
        """The hosts to try in one round (``[None]``: the connect arguments' own)."""
        if self.memory is None:
            return [None]
        return list(self.memory.order(self.current, now))

    def deferred(self, ask: bool = True) -> Any:
        """A driver connection made but not opened (PyMySQL's ``defer_connect=True``), for
        the caller's ``connect(sock)`` to open; ``ask=False``: without asking
        ``credentials`` (a stand-in that never connects)."""
        host = self.plan(time.monotonic())[0]
        arguments = self.arguments(host)
        if self.credentials is not None and ask:
            try:
                made = self.credentials(self.shown(arguments))
            except Exception as exc:
                exc.add_note(CREDENTIALS_FAILED)
                raise
            arguments = self.with_credentials(arguments, made)
        return self.driver_connect(*self.args, **arguments, defer_connect=True)

    def carry(self, carried: dict[str, Any]) -> None:
        """For the next connection only: what the one it replaces hands over, if the
        caller's connect takes it (``lambda: psycopg.connect(dsn)`` takes nothing)."""
        self.carried = {name: value for name, value in carried.items() if self._takes(name)}

    def _takes(self, name: str) -> bool:
        try:
            parameters = inspect.signature(self.driver_connect).parameters.values()
        except (TypeError, ValueError):
            return False
        return any(
            p.kind is p.VAR_KEYWORD
            or (p.name == name and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
            for p in parameters
        )

    def arguments(self, host: Host | None) -> dict[str, Any]:
        # Carried only to the host the old connection was on: another cluster's types
        # (hstore, enums) have other ids.
        carried = self.carried if host is None or host == self.current else None
        if host is None and not carried:
            return self.kwargs
        kwargs = {**self.kwargs, **carried} if carried else dict(self.kwargs)
        if host is None:
            return kwargs
        kwargs["host"] = host.host
        if host.port is not None:
            kwargs["port"] = host.port
        return kwargs

    def shown(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """What the ``credentials`` callable is given: a copy of the caller's arguments
        (nested plain data copied too, so that changing it changes nothing here), without
        what the old connection handed over (it must not outlive the replacement)."""
        shown = {}
        for name, value in arguments.items():
            if name in self.carried:
                continue
            if isinstance(value, dict | list):
                with contextlib.suppress(Exception):  # an SSLContext inside: as it is
                    value = copy.deepcopy(value)
            shown[name] = value
        return shown

    def with_credentials(self, arguments: dict[str, Any], made: object) -> dict[str, Any]:
        """``arguments`` updated with what the ``credentials`` callable returned for them
        (``made``): how to log in may change between connects (the names in
        ``LOGIN_ARGUMENTS``), nothing else (which server, the session's set-up)."""
        if inspect.isawaitable(made):
            close = getattr(made, "close", None)
            if close is not None:
                close()  # a coroutine never awaited would warn
            raise TypeError(
                "credentials returned an awaitable: resilient_dbapi.connect() calls it "
                "without awaiting; use a plain function, or resilient_dbapi.aio.connect()"
            )
        if not isinstance(made, Mapping):
            raise TypeError(
                "credentials must return a mapping of connect arguments, such as "
                f"{{'password': token}}; got {type_name(made)}"
            )
        wrong = sorted(repr(name) for name in made if not isinstance(name, str))
        if wrong:
            raise TypeError(f"credentials returned argument names that are not strings: {wrong}")
        other = sorted(set(made) - LOGIN_ARGUMENTS)
        if other:
            raise ValueError(
                f"credentials returned {', '.join(other)}: it may change how to log in "
                f"({', '.join(sorted(LOGIN_ARGUMENTS))}), not which server nor how the "
                "session is set up (list servers with hosts=)"
            )
        merged = dict(arguments)
        for name in made:
            for alias in _ALIASES.get(name, ()):
                merged.pop(alias, None)  # else the driver may prefer the stale one
        merged.update(made)
        return merged

    def attempt_failed(
        self,
        exc: BaseException,
        host: Host | None,
        raw: Any,
        engine: Engine,
        observer: Observer,
        outcomes: dict[Host, str],
        started: float,
    ) -> TypeGuard[Exception]:
        """A connect attempt begun at ``started`` (or the setup of what it made) raised
        ``exc``: let a half-made connection go, and say whether the round goes on
        (False: re-raise)."""
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()
        if not isinstance(exc, Exception):
            return False  # interrupted: never retried
        return self.passed_over(host, exc, engine, time.monotonic(), observer, outcomes, started)

    def passed_over(
        self,
        host: Host | None,
        exc: Exception,
        engine: Engine,
        now: float,
        observer: Observer,
        outcomes: dict[Host, str],
        started: float | None = None,
    ) -> bool:
        """A connect to ``host`` (begun at ``started``) failed with ``exc``: remember it,
        and say whether to go on with the round's next host (False: raise ``exc``, it
        will not pass). A host never reached, or up in the wrong role, is marked (see
        :class:`HostMemory`); one that answered (busy, refusing the login or TLS, slow
        to shake hands) is not: its sessions are not in doubt."""
        if host is None or self.memory is None:
            return True  # one host: retry_wait decides
        failure = connect_failure(exc, engine)
        if failure is None or not engine.connect_may_pass(failure[1]):
            return False
        code, kind = failure
        # A set-up statement refused with 1047: the node stopped serving after the role
        # check (or none was made): as much a wrong role as a failed check.
        unready = kind is ErrorKind.NOT_READY
        why = str(exc) if isinstance(exc, WrongRole) else "not ready" if unready else "unreachable"
        self.memory.failed(host, now)
        if isinstance(exc, WrongRole) or unready or never_reached(exc, code):
            self.memory.mark(host, why, now if started is None else started)
        outcomes[host] = why if code is None else f"{why} ({code})"
        observer.emit(HostPassedOver(str(host), why, code))
        return True

    def arrived(self, host: Host | None) -> None:
        if host is not None and self.memory is not None:
            self.current = host
            # The number first, then the time: a mark found after this arrival bumps
            # the number after it was read.
            self.seen = self.memory.generation
            self.arrived_at = time.monotonic()
            self.memory.succeeded(host)

    def news(self) -> str | None:
        """Why the host this connection is on was marked by evidence newer than its
        arrival (see :class:`HostMemory`), or None; the other hosts' marks are no news."""
        memory = self.memory
        if memory is None or memory.generation == self.seen:
            return None
        self.seen = memory.generation
        return memory.marked_since(self.current, self.arrived_at)

    def left_marked(self, now: float) -> None:
        """The connection leaves its marked host: tried last again, whatever is left of
        its quarantine (else a replacement might go straight back to it)."""
        if self.memory is not None and self.current is not None:
            self.memory.failed(self.current, now)

    def watch(self, gone: Callable[[], bool] | None) -> Callable[[], bool]:
        """The hot path's "known dead?" check, also true once a host was marked since
        this connection arrived (one number compared): the checkout then asks
        :meth:`news`."""
        memory = self.memory
        assert memory is not None

        if gone is None:

            def marked() -> bool:
                return memory.generation != self.seen

            return marked

        def marked_or_gone() -> bool:
            return memory.generation != self.seen or gone()

        return marked_or_gone

    def leave_current(
        self, why: str, now: float, since: float, observer: Observer, code: Code | None
    ) -> None:
        """The current host failed a statement for a reason that concerns every
        connection on it (``why``): it turned read-only or stopped serving (a refusal,
        ``since`` = ``now``), or went silent past the read timeout (``since`` = the
        connection's last answer; a slow statement marks it too: the caller's timeout says
        how long silence means gone, and a mark costs reconnects, never a write). It is
        tried last, and the other connections that arrived on it before ``since`` leave
        it before sending."""
        if self.memory is not None and self.current is not None:
            self.memory.found_bad(self.current, why, now, since)
            observer.emit(HostPassedOver(str(self.current), why, code))

    def give_up(
        self, exc: Exception, outcomes: dict[Host, str], rounds: int, elapsed: float
    ) -> NoReturn:
        """Raise the error of a connect given up: ``exc`` itself with one host; with
        several, a ``NoSuitableHostError`` saying what each host did."""
        error = self._gave_up(exc, outcomes, rounds, elapsed)
        if error is exc:
            raise exc
        raise error from exc

    def role_refused(self, exc: WrongRole, where: str) -> Exception:
        """The error for a server reached at ``where`` whose role does not suit the
        target, when nothing else was tried."""
        return self._gave_up(exc, {Host(where): str(exc)}, 1, 0.0)

    def _gave_up(
        self, exc: Exception, outcomes: dict[Host, str], rounds: int, elapsed: float
    ) -> Exception:
        if self.memory is None or not outcomes:
            return exc
        adapter = exc.adapter if isinstance(exc, WrongRole) else adapters.adapter_for_error(exc)
        if adapter is None:
            return exc
        target = self.memory.failover.target
        code = None if isinstance(exc, WrongRole) else adapter.error_code(exc)
        if code is None:
            # The driver's own code for the refusal the last host's role stands for.
            kind = None
            if isinstance(exc, WrongRole) and exc.role is Role.NOT_READY:
                kind = ErrorKind.NOT_READY
            elif target is Target.PRIMARY:
                kind = ErrorKind.READ_ONLY
            codes = [c for c, k in adapter.errors.codes.items() if k is kind]
            code = codes[0] if codes else None
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
        if self.memory is None and not engine.facts.reached and unknown_name(exc):
            # Never reached: a name the resolver does not know is a setting to fix, and
            # waiting does not fix it. Once reached, it may be a server restarting
            # (Docker's and Kubernetes' DNS drop its name meanwhile): waited for.
            wait = None
        else:
            wait = engine.connect_failed(kind, attempt, elapsed)
        if wait is None:
            if attempt > 1:
                observer.emit(GaveUp(where, attempt, code))
            return None
        if self.memory is not None:
            wait = self.memory.failover.between_rounds(wait, saw_wrong_role)
        observer.emit(Retrying(where, "connect", attempt, wait, code))
        return wait


# What credentials may return: how to log in (the drivers' names for the user, the
# password, TLS client files and the auth plugin), never which server nor the session's
# set-up, which the host memory and what a connection learned of its server rely on.
LOGIN_ARGUMENTS = frozenset(
    {
        "user",
        "username",
        "password",
        "passwd",
        "password1",
        "password2",
        "password3",
        "ssl",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_key_password",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslpassword",
        "auth_plugin",
        "auth_plugin_map",
        "server_public_key",
    }
)
# The same argument under the drivers' other names (PyMySQL's and mysqlclient's passwd).
_ALIASES = {
    "password": ("passwd",),
    "passwd": ("password",),
    "user": ("username",),
    "username": ("user",),
}
CREDENTIALS_FAILED = "raised by the credentials callable, before connecting"


# The resolver's "no such name" answers (EAI_NODATA where the system has it), as
# opposed to EAI_AGAIN, "try again", which waiting may heal.
_NO_SUCH_NAME = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def unknown_name(exc: BaseException) -> bool:
    """Whether a failed connect's cause is a host name the resolver says does not exist
    (PyMySQL and aiomysql report it as 2003, "can't connect", keeping the resolver's
    error as ``original_exception`` or the cause)."""
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return cause.errno in _NO_SUCH_NAME
    return False


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, at most 8 deep: the drivers keep the socket's error as
    ``original_exception`` (PyMySQL), the cause, or the context."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(seen) < 8 and cause not in seen:
        yield cause
        seen.append(cause)
        original = getattr(cause, "original_exception", None)
        cause = original if isinstance(original, BaseException) else cause.__cause__
        if cause is None:
            cause = seen[-1].__context__


_UNREACHABLE_TEXT = re.compile(
    r"Connection refused|timeout expired|timed out|No route to host|Network is unreachable"
)


def never_reached(exc: BaseException, code: Code | None) -> bool:
    """Whether a failed connect never reached the server (refused, timed out, no route):
    MySQL's "can't connect" (2002, 2003) unless TLS failed (PyMySQL and aiomysql report
    a refused certificate as 2003 too); libpq's own words (no SQLSTATE: the server said
    nothing). A server that answered (too many connections, a refused login, a lost
    handshake) is reachable."""
    if any(isinstance(cause, ssl.SSLError) for cause in _causes(exc)):
        return False
    if isinstance(code, int):
        return code in (2002, 2003)
    return bool(_UNREACHABLE_TEXT.search(str(exc)))


def timed_out(exc: BaseException) -> bool:
    """Whether an open connection's error is the driver's read timeout (PyMySQL keeps the
    socket's TimeoutError as what caused it): the server said nothing for as long as the
    caller allows. Only the error's own cause counts, never an earlier error being
    handled when it was raised (another connection's timeout, say)."""
    original = getattr(exc, "original_exception", None)
    cause = original if isinstance(original, BaseException) else exc.__cause__
    if cause is None and not exc.__suppress_context__:
        cause = exc.__context__
    return isinstance(cause, TimeoutError)


def connect_failure(exc: Exception, engine: Engine) -> tuple[Any, ErrorKind] | None:
    """A failed connect's driver error code and kind; None for an error of no driver."""
    if isinstance(exc, WrongRole):  # the role may change (a promotion): transient
        return None, ErrorKind.CONNECT_TRANSIENT
    if isinstance(exc, TLSDowngradeError):
        # A refusal by configuration, not an outage that may pass: retrying would only
        # delay the error by the policy's deadline.
        return exc.code, ErrorKind.CONNECT_FATAL
    adapter = adapters.adapter_for_error(exc)
    if adapter is None:
        return None
    code = adapter.error_code(exc)
    table = engine.errors if engine.errors.codes else adapter.errors
    return code, table.kind(code)


def check_probe(probe: object, hosts: object) -> HostProbe | None:
    """``connect()``'s ``probe=``: a HostProbe, only with ``hosts=``."""
    if probe is None:
        return None
    if not isinstance(probe, HostProbe):
        raise TypeError(
            f"probe must be a resilient_dbapi.HostProbe(interval=..., timeout=...), got {probe!r}"
        )
    if hosts is None:
        raise ValueError("probe= needs hosts=: with one host there is nowhere else to go")
    return probe


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
