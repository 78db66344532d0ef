"""Pass a driver object's own attributes through a proxy without ``__getattr__``.

A class that defines ``__getattr__`` loses CPython's specialised attribute lookups on
every ``self.x`` in its methods, which the hot path cannot afford. Instead, each proxy
class gets one subclass per driver class, with a forwarding descriptor for each public
name of the driver object that the proxy does not define itself.
"""

from __future__ import annotations

import inspect
import sys
from types import CodeType, FunctionType
from typing import Any, TypeVar

from .adapters._see_through import innermost

T = TypeVar("T")

_cache: dict[tuple[type, type, type, tuple[type, ...]], type] = {}
_wrapping: dict[type, bool] = {}  # whether a driver class's objects wrap another (wrapt)


class _Forward:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj._raw, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        # Set on the driver object and kept for the next one (psycopg's ``row_factory``,
        # ``read_only``): otherwise a reconnect would silently undo it.
        obj._attribute_set(self.name, value)


class _Peek(_Forward):
    """A private data attribute of the driver object (``cursor._executed``, which
    Django's debug log reads; ``conn._sock``), read through; never set through (it
    would hide the driver's value): that is done on ``.raw``. Never a private method,
    which would send past the safety rules."""

    __slots__ = ()

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(
            f"{self.name} is the driver's, read through the proxy: set it on .raw",
            name=self.name,
            obj=obj,
        )


_used: dict[type, frozenset[str]] = {}


def _code_names(code: CodeType, into: set[str]) -> None:
    into.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            _code_names(const, into)


def _functions_of(namespace: dict[str, Any], seen: set[int]) -> list[CodeType]:
    """The code of every function, method and property in ``namespace``, and in the
    classes it holds (defined in the package)."""
    codes: list[CodeType] = []
    for value in namespace.values():
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            codes.extend(f.__code__ for f in (value.fget, value.fset) if f is not None)
        elif isinstance(value, FunctionType):
            codes.append(value.__code__)
        elif isinstance(value, type) and value.__module__.startswith("resilient_dbapi"):
            codes.extend(_functions_of(dict(vars(value)), seen))
    return codes


def _private_names_used(base: type) -> frozenset[str]:
    """Every name the code of the proxy's modules uses (``self._raw``, ``conn._gen``),
    read from the compiled code: never read through, whatever the driver calls its
    attributes."""
    found = _used.get(base)
    if found is None:
        names: set[str] = set()
        seen: set[int] = set()
        for klass in base.__mro__:
            module = sys.modules.get(klass.__module__)
            if module is not None and klass.__module__.startswith("resilient_dbapi"):
                for code in _functions_of(dict(vars(module)), seen):
                    _code_names(code, names)
        found = _used[base] = frozenset(names)
    return found


def _data(holder: Any, name: str) -> bool:
    """Whether ``name`` of a driver class or object is data, not a method."""
    if isinstance(holder, dict):
        value = holder.get(name)
    else:
        value = inspect.getattr_static(holder, name, None)
    return isinstance(value, property) or not callable(value)


def _driver_class(self: Any) -> type:
    """What ``isinstance`` sees besides the proxy's own class: the driver object's
    (``isinstance(conn, pymysql.connections.Connection)``, a caller's cursor class), as
    through a ``wrapt`` proxy. ``type()`` still says what the object is."""
    try:
        return self._raw.__class__  # type: ignore[no-any-return]
    except AttributeError:  # not bound to a driver object yet
        return type(self)


def _own_names(base: type) -> set[str]:
    names = set(dir(base))
    for klass in base.__mro__:
        names.update(getattr(klass, "__annotations__", {}))
    return names


class _Absent:
    """A method of the proxy that this driver's connections lack (``select_db`` on a
    psycopg connection): ``hasattr`` is False and using it says why."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        raw = type(obj._raw) if obj is not None else None
        driver = f"{raw.__module__}.{raw.__qualname__}" if raw is not None else "this driver"
        raise AttributeError(
            f"{self.name}() is not available: the driver's connection ({driver}) has no "
            f"{self.name}()",
            name=self.name,
            obj=obj,
        )


def wraps(raw: object) -> bool:
    """Whether ``raw`` is a wrapping proxy (``wrapt``'s, OpenTelemetry's) of a driver
    object; asked once per class: a missing attribute can cost microseconds."""
    kind = type(raw)
    found = _wrapping.get(kind)
    if found is None:
        found = _wrapping[kind] = getattr(raw, "__wrapped__", None) is not None
    return found


def forwarding_class(
    base: type[T], raw: object, extra: tuple[str, ...] = (), mixins: tuple[type, ...] = ()
) -> type[T]:
    """``base`` extended with pass-through attributes for ``raw``'s class (made once).

    ``extra`` names attributes a driver object may only set later (a cursor's
    ``lastrowid`` appears at its first ``execute``). ``mixins`` come before ``base`` in
    the MRO: what a driver spells differently (an adapter's ``surface``). Methods ``base``
    lists in ``_driver_methods`` are hidden when ``raw``'s class has no such method.
    Private names of ``raw`` that the proxy's code never uses are read through (extra
    private names too), for the tools that read them."""
    # Under a wrapping proxy (OpenTelemetry's), the driver's names are its object's; one
    # wrapper class serves every driver class (DictCursor, SSCursor ...).
    kind = type(raw)
    inner = innermost(raw) if wraps(raw) else raw
    key = (base, kind, type(inner), mixins)
    cls = _cache.get(key)
    if cls is None:
        own = _own_names(base)
        for mixin in mixins:
            own |= _own_names(mixin)
        seen = set(dir(type(raw))) | set(dir(type(inner)))
        names = {n for n in seen if not n.startswith("_")}
        names.update(n for n in getattr(raw, "__dict__", {}) if not n.startswith("_"))
        names.update(n for n in extra if not n.startswith("_"))
        namespace: dict[str, Any] = {n: _Forward(n) for n in sorted(names - own)}
        private = {
            n
            for n in seen
            if n.startswith("_") and not n.startswith("__") and _data(type(inner), n)
        }
        attributes = getattr(inner, "__dict__", {})
        private.update(
            n for n in attributes if n.startswith("_") and n[1:2] != "_" and _data(attributes, n)
        )
        private.update(n for n in extra if n.startswith("_"))
        private -= own | _private_names_used(base)
        for mixin in mixins:
            private -= _private_names_used(mixin)
        namespace.update((n, _Peek(n)) for n in sorted(private))
        for name in getattr(base, "_driver_methods", ()):
            if not hasattr(type(inner), name) and not any(hasattr(m, name) for m in mixins):
                namespace[name] = _Absent(name)
        namespace["__class__"] = property(_driver_class)
        namespace["__module__"] = base.__module__
        namespace["__qualname__"] = base.__qualname__
        namespace["__slots__"] = ()
        cls = type(base.__name__, (*mixins, base), namespace)
        _cache[key] = cls
    return cls
