"""The checks of what a caller passes to ``connect()`` and ``creator()``: wrong values
raise an error naming what was wrong and what is allowed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .policies import Policy, default_policies

__all__: list[str] = []


def type_name(value: object) -> str:
    """A value's type for an error message: never its contents, which may hold secrets."""
    return f"a {type(value).__module__}.{type(value).__qualname__}".replace("a builtins.", "a ")


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
            "(PingOnCheckout, MaxAge, RetryOnError, DeadPeerTimeout, ReplayTransaction, "
            "ErrorTable); "
            f"got {type_name(policies)}"
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


def check_credentials(credentials: object) -> Callable[..., Any] | None:
    if credentials is None:
        return None
    if not callable(credentials):
        raise TypeError(
            "credentials must be a callable taking the connect arguments (a dict) and "
            "returning the ones to use instead, e.g. lambda args: {'password': token()}; "
            f"got {type_name(credentials)}"
        )
    return credentials
