"""Drivers seen through a wrapping proxy (OpenTelemetry's instrumentation, any
``wrapt.ObjectProxy``): the proxy's statements go through the wrapper, so tracing keeps
working; the adapter looks at the driver's own connection underneath, so protection
does too, and the proxy's own set-up questions are not traced as the caller's."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .base import Adapter, AsyncAdapter, Inspector

__all__ = ["SeeThrough", "innermost"]

_DEPTH = 8  # wrappers of wrappers, bounded


def innermost(obj: Any) -> Any:
    """The object under every ``__wrapped__`` of ``obj`` (``obj`` itself if none)."""
    for _ in range(_DEPTH):
        inner = getattr(obj, "__wrapped__", None)
        if inner is None:
            break
        obj = inner
    return obj


def _takes_driver_object(klass: type) -> frozenset[str]:
    """The hooks whose first argument is a driver connection or cursor."""
    names = set()
    for name, member in vars(klass).items():
        if name.startswith("_") or not callable(member):
            continue
        params = list(inspect.signature(member).parameters)
        if len(params) > 1 and params[1] in ("raw", "cursor"):
            names.add(name)
    return frozenset(names)


_UNWRAPPED = frozenset().union(
    *(_takes_driver_object(k) for k in (Inspector, Adapter, AsyncAdapter))
)


class SeeThrough:
    """``adapter``, given the driver object under the wrapper wherever a hook takes one
    (its attributes otherwise: error classes, error codes)."""

    def __init__(self, adapter: Inspector) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._adapter, name)
        if name in _UNWRAPPED:
            hook: Callable[..., Any] = value

            def through(obj: Any, *args: Any) -> Any:
                return hook(innermost(obj), *args)

            value = through
        setattr(self, name, value)  # looked up once
        return value

    def __repr__(self) -> str:
        return f"SeeThrough({self._adapter!r})"
