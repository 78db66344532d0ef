"""Driver adapters: the only driver-specific code.

An adapter knows how to look at one driver's connection without a round trip (its
socket, its transaction flags), how to ping it with a time limit, and how to read the
driver's errors. The adapter is chosen from the class of the connection object the
connect callable returns, so a ``lambda`` or ``functools.partial`` works as well.
"""

from __future__ import annotations

import importlib
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


def _find(raw: object) -> Inspector:
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


def connect_kwargs(driver_connect: object, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``driver_connect``, with what its shipped adapter asks
    the server for at the handshake (PyMySQL and aiomysql: session tracking, which tells
    which lost transactions are provably rolled back)."""
    package = (getattr(driver_connect, "__module__", None) or "").split(".")[0]
    if package in ("pymysql", "aiomysql"):
        from ._mysql import connect_kwargs as mysql_kwargs

        return mysql_kwargs(kwargs)
    return kwargs


def adapter_for_error(exc: BaseException) -> Inspector | None:
    """The adapter whose driver raised ``exc``, if any (the generic fallback never
    claims an error: connecting with an unknown driver is not retried)."""
    for adapter in (*_registry, *_shipped(type(exc))):
        if adapter.owns_error(exc):
            return adapter
    return None
