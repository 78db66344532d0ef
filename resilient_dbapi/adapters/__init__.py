"""Driver adapters: the only driver-specific code.

An adapter knows how to look at one driver's connection without a round trip (its
socket, its transaction flags), how to ping it with a time limit, and how to read the
driver's errors. The adapter is chosen from the class of the connection object the
connect callable returns, so a ``lambda`` or ``functools.partial`` works as well.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from typing import Any, Protocol

from ..error_kinds import ErrorTable

__all__ = ["Adapter", "AsyncAdapter", "Liveness", "adapter_for", "adapter_for_error", "register"]


class Liveness(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNSURE = "unsure"
    """The cheap check cannot tell: ask the server (a ping)."""


class _Inspector(Protocol):
    """What a proxy needs from a driver besides round trips."""

    name: str
    errors: ErrorTable
    operational_error: type[Exception]
    interface_error: type[Exception]
    programming_error: type[Exception]
    gone_code: int
    """The driver's code for "the connection is gone", for errors found before sending."""

    def owns(self, raw: object) -> bool:
        """Whether ``raw`` is a connection of this driver."""

    def owns_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an error of this driver."""

    def probe(self, raw: Any) -> Callable[[], Liveness]:
        """A zero-argument, zero-round-trip liveness check of ``raw``'s current socket."""

    def known_dead(self, raw: Any) -> Callable[[], bool] | None:
        """A check of ``raw`` that costs no system call (True: certainly dead), run before
        every statement; None if the driver keeps no such state."""

    def status(self, raw: Any) -> tuple[bool, bool]:
        """``(in_transaction, autocommit)`` as the server last reported them."""

    def busy(self, raw: Any) -> bool:
        """Whether a result is still being read (an unbuffered cursor mid-stream)."""

    def discard(self, raw: Any) -> None:
        """Close ``raw`` at once, sending nothing, never raising."""

    def error_code(self, exc: BaseException) -> int | None:
        """The driver's error code of ``exc``, or None if it is not a driver error."""

    def never_sent(self, exc: BaseException) -> bool:
        """Whether ``exc`` proves the failed command never reached the server."""

    def unbuffered(self, cursor: Any) -> bool:
        """Whether fetching from ``cursor`` reads from the network."""

    def describe(self, raw: Any) -> str:
        """Where ``raw`` is connected, for ``repr()`` and logs: never a secret."""


class Adapter(_Inspector, Protocol):
    """What the sync proxy needs from a driver."""

    def ping(self, raw: Any, timeout: float) -> None:
        """A round trip bounded by ``timeout`` seconds; raises the driver's error if dead."""

    def wait_timeout(self, raw: Any) -> float | None:
        """The session's ``wait_timeout`` in seconds (one round trip), if the server has one."""

    def execute(self, raw: Any, query: str, args: Any) -> None:
        """Run one statement on ``raw`` and discard its result (setting up a session)."""

    def set_autocommit(self, raw: Any, value: bool) -> None: ...

    def select_db(self, raw: Any, db: str) -> None: ...


class AsyncAdapter(_Inspector, Protocol):
    """What the asyncio proxy needs from a driver: the round trips are coroutines."""

    async def ping(self, raw: Any, timeout: float) -> None:
        """A round trip bounded by ``timeout`` seconds; raises the driver's error if dead."""

    async def wait_timeout(self, raw: Any) -> float | None:
        """The session's ``wait_timeout`` in seconds (one round trip), if the server has one."""

    async def execute(self, raw: Any, query: str, args: Any) -> None:
        """Run one statement on ``raw`` and discard its result (setting up a session)."""

    async def set_autocommit(self, raw: Any, value: bool) -> None: ...

    async def select_db(self, raw: Any, db: str) -> None: ...


_registry: list[Any] = []
# The adapters shipped, by the top-level package of the driver's classes; each is
# imported only when a connection (or error) of its driver is first seen.
_BUILTIN: dict[str, tuple[tuple[str, str], ...]] = {
    "pymysql": (("pymysql", "PyMySQLAdapter"),),
    "aiomysql": (("aiomysql", "AiomysqlAdapter"),),
    "MySQLdb": (("mysqlclient", "MySQLdbAdapter"),),
    "mysql": (("mysql_connector", "MySQLConnectorAdapter"),),
    "psycopg": (("psycopg", "PsycopgAdapter"),),
    "sqlite3": (("sqlite3", "SQLiteAdapter"),),
}
_loaded: dict[str, list[Any]] = {}


def register(adapter: Adapter | AsyncAdapter) -> None:
    """Register an adapter for a driver resilient_dbapi does not ship one for; adapters
    registered later are tried first, and before the shipped ones."""
    for name in ("owns", "owns_error", "probe", "status", "error_code", "never_sent", "ping"):
        if not callable(getattr(adapter, name, None)):
            raise TypeError(
                f"register(): {type(adapter).__qualname__} is not an adapter: it has no "
                f"{name}() (see resilient_dbapi.adapters.Adapter for what one needs)"
            )
    _registry.insert(0, adapter)


def _shipped(klass: type) -> list[Any]:
    """The shipped adapters for the driver that defines ``klass`` or a base of it."""
    found: list[Any] = []
    for base in klass.__mro__:
        package = base.__module__.split(".")[0]
        if package not in _BUILTIN:
            continue
        if package not in _loaded:
            adapters = []
            for module, name in _BUILTIN[package]:
                try:
                    adapters.append(
                        getattr(importlib.import_module(f".{module}", __name__), name)()
                    )
                except ImportError:  # that driver's own imports failed: nothing to offer
                    continue
            _loaded[package] = adapters
        found.extend(_loaded[package])
    return found


def adapter_for(raw: object) -> Any:
    """The adapter (an :class:`Adapter` or :class:`AsyncAdapter`) for a driver connection
    object: a registered one, a shipped one, or the generic fallback (the weakest mode)
    for any other PEP 249 driver; TypeError if ``raw`` is not a DB-API connection."""
    for adapter in (*_registry, *_shipped(type(raw))):
        if adapter.owns(raw):
            return adapter
    from .generic import GenericAdapter

    generic = GenericAdapter.for_connection(raw)
    if generic is None:
        shipped = ", ".join(sorted(_BUILTIN))
        raise TypeError(
            f"resilient_dbapi has no adapter for {type(raw).__module__}.{type(raw).__qualname__} "
            f"connections, and the driver exposes no PEP 249 exception classes to fall back "
            f"on (shipped adapters: {shipped}); register one with "
            "resilient_dbapi.adapters.register()"
        )
    return generic


def adapter_for_error(exc: BaseException) -> Any:
    """The adapter whose driver raised ``exc``, if any (the generic fallback never
    claims an error: connecting with an unknown driver is not retried)."""
    for adapter in (*_registry, *_shipped(type(exc))):
        if adapter.owns_error(exc):
            return adapter
    return None
