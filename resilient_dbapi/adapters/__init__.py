"""Driver adapters: the only driver-specific code.

An adapter knows how to look at one driver's connection without a round trip (its
socket, its transaction flags), how to ping it with a time limit, and how to read the
driver's errors. The adapter is chosen from the class of the connection object the
connect callable returns, so a ``lambda`` or ``functools.partial`` works as well.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, cast

from .base import Adapter, AdapterBase, AsyncAdapter, Inspector, Liveness

__all__ = [
    "Adapter",
    "AdapterBase",
    "AsyncAdapter",
    "Inspector",
    "Liveness",
    "adapter_for",
    "adapter_for_error",
    "async_adapter_for",
    "connect_kwargs",
    "register",
]


_registry: list[Inspector] = []
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
_loaded: dict[str, list[Inspector]] = {}
# Every hook of the contract: a registered adapter has them all (AdapterBase gives the
# optional ones their defaults).
_HOOKS = tuple(
    sorted(
        name
        for klass in (Inspector, Adapter)
        for name in (*vars(klass).get("__annotations__", {}), *vars(klass))
        if not name.startswith("_")
    )
)


def register(adapter: Adapter | AsyncAdapter) -> None:
    """Register an adapter for a driver resilient_dbapi does not ship one for; adapters
    registered later are tried first, and before the shipped ones. Subclass
    :class:`AdapterBase` and implement the hooks it has no default for."""
    missing = [name for name in _HOOKS if not hasattr(adapter, name)]
    if missing:
        raise TypeError(
            f"register(): {type(adapter).__qualname__} is not an adapter: it lacks "
            f"{', '.join(missing)} (subclass resilient_dbapi.adapters.AdapterBase, which "
            "gives the optional hooks their defaults; see resilient_dbapi.adapters.Adapter "
            "for the rest)"
        )
    _registry.insert(0, adapter)


def _shipped(klass: type) -> list[Inspector]:
    """The shipped adapters for the driver that defines ``klass`` or a base of it."""
    found: list[Inspector] = []
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


_announced: set[type] = set()


def _announce_fallback(raw: object) -> None:
    """A connection that claims a driver's class it is not (a proxy without
    ``__wrapped__``) gets the generic adapter: say so once per class, and why."""
    claimed = raw.__class__
    if claimed is type(raw) or type(raw) in _announced:
        return
    if not any(adapter.owns(raw) for adapter in _shipped(claimed)):
        return
    _announced.add(type(raw))
    warnings.warn(
        f"resilient_dbapi: {type(raw).__module__}.{type(raw).__qualname__} poses as "
        f"{claimed.__module__}.{claimed.__qualname__} but does not say what it wraps "
        "(no __wrapped__): the generic adapter is used, which cannot see the driver's "
        "socket or transaction flags (no liveness check before sending, every lost write "
        "of unknown outcome)",
        RuntimeWarning,
        stacklevel=4,
    )


def _owner(raw: object) -> Inspector | None:
    for adapter in (*_registry, *_shipped(type(raw))):
        if adapter.owns(raw):
            return adapter
    return None


_seen_through: dict[int, Inspector] = {}


def _find(raw: object) -> Inspector:
    from ._see_through import SeeThrough, innermost

    inner = innermost(raw)
    if getattr(type(raw), "_resilient_dbapi_proxy", False) or getattr(
        type(inner), "_resilient_dbapi_proxy", False
    ):
        raise TypeError(
            "driver_connect returned a resilient connection: give connect() the driver's "
            "own connect callable (a resilient connection does not wrap another)"
        )
    found = _owner(raw)
    if found is not None:
        return found
    if inner is not raw:
        # A wrapping proxy (OpenTelemetry's instrumentation, wrapt): the driver's
        # adapter, looking under it.
        owner = _owner(inner)
        if owner is not None:
            see = _seen_through.get(id(owner))
            if see is None:
                see = _seen_through[id(owner)] = cast(Inspector, SeeThrough(owner))
            return see
    _announce_fallback(raw)
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


def adapter_for(raw: object) -> Adapter:
    """The adapter for a sync driver connection object: a registered one, a shipped one,
    or the generic fallback (the weakest mode) for any other PEP 249 driver; TypeError if
    ``raw`` is not a DB-API connection."""
    # A connection's class says whose it is, and so whether its adapter's round trips
    # are coroutines: the sync proxy never holds an asyncio driver's connection (its
    # connect callable returns an awaitable, refused before this).
    return cast(Adapter, _find(raw))


def async_adapter_for(raw: object) -> AsyncAdapter:
    """:func:`adapter_for` for an asyncio driver connection object."""
    return cast(AsyncAdapter, _find(raw))


def _package(driver_connect: object) -> str:
    return (getattr(driver_connect, "__module__", None) or "").split(".")[0]


def connect_kwargs(driver_connect: object, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``driver_connect``, with what its shipped adapter asks
    the server for at the handshake (PyMySQL and aiomysql: session tracking, which tells
    which lost transactions are provably rolled back)."""
    if _package(driver_connect) in ("pymysql", "aiomysql"):
        from ._mysql import connect_kwargs as mysql_kwargs

        return mysql_kwargs(kwargs)
    return kwargs


def take_autocommit(
    driver_connect: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], bool | None]:
    """``kwargs`` without the autocommit mode when each new connection's set-up sets it
    in its first statement (PyMySQL and aiomysql), and that mode; else ``kwargs`` as
    given and None (the driver sets it)."""
    if _package(driver_connect) in ("pymysql", "aiomysql"):
        from ._mysql import take_autocommit as mysql_take

        return mysql_take(args, kwargs)
    return kwargs, None


def adapter_for_error(exc: BaseException) -> Inspector | None:
    """The adapter whose driver raised ``exc``, if any (the generic fallback never
    claims an error: connecting with an unknown driver is not retried)."""
    for adapter in (*_registry, *_shipped(type(exc))):
        if adapter.owns_error(exc):
            return adapter
    return None
