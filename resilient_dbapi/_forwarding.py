"""Pass a driver object's own attributes through a proxy without ``__getattr__``.

A class that defines ``__getattr__`` loses CPython's specialised attribute lookups on
every ``self.x`` in its methods, which the hot path cannot afford. Instead, each proxy
class gets one subclass per driver class, with a forwarding descriptor for each public
name of the driver object that the proxy does not define itself.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

_cache: dict[tuple[type, type, tuple[type, ...]], type] = {}


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


def forwarding_class(
    base: type[T], raw: object, extra: tuple[str, ...] = (), mixins: tuple[type, ...] = ()
) -> type[T]:
    """``base`` extended with pass-through attributes for ``raw``'s class (made once).

    ``extra`` names attributes a driver object may only set later (a cursor's
    ``lastrowid`` appears at its first ``execute``). ``mixins`` come before ``base`` in
    the MRO: what a driver spells differently (an adapter's ``surface``). Methods ``base``
    lists in ``_driver_methods`` are hidden when ``raw``'s class has no such method."""
    key = (base, type(raw), mixins)
    cls = _cache.get(key)
    if cls is None:
        own = _own_names(base)
        for mixin in mixins:
            own |= _own_names(mixin)
        names = {n for n in dir(type(raw)) if not n.startswith("_")}
        names.update(n for n in getattr(raw, "__dict__", {}) if not n.startswith("_"))
        names.update(extra)
        namespace: dict[str, Any] = {n: _Forward(n) for n in sorted(names - own)}
        for name in getattr(base, "_driver_methods", ()):
            if not hasattr(type(raw), name) and not any(hasattr(m, name) for m in mixins):
                namespace[name] = _Absent(name)
        namespace["__module__"] = base.__module__
        namespace["__qualname__"] = base.__qualname__
        namespace["__slots__"] = ()
        cls = type(base.__name__, (*mixins, base), namespace)
        _cache[key] = cls
    return cls
