"""Django's PostgreSQL backend (psycopg 3), with each connection made by
:func:`resilient_dbapi.connect`::

    DATABASES = {"default": {
        "ENGINE": "resilient_dbapi.contrib.django.postgresql",
        "NAME": "shop", "USER": "app", "PASSWORD": "...", "HOST": "db",
        "CONN_MAX_AGE": 600,
        "OPTIONS": {"policies": "web"},   # a profile's name or path; optional
    }}

Everything else is Django's own backend: its SQL, its isolation level and time zone
(kept on each new physical connection), its errors. ``CONN_HEALTH_CHECKS`` costs nothing
here: the proxy checks the connection before each statement itself. ``OPTIONS["pool"]``
(psycopg_pool) is refused: a pool would hand out its own connections, not resilient ones;
so is ``OPTIONS["assume_role"]`` (a role is not set again on a new connection).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as _pg
from django.utils.asyncio import async_unsafe

from ....connection import connect as _connect

__all__ = ["DatabaseWrapper"]


class _Driver:
    """psycopg as Django's backend sees it (``self.Database``), whose ``connect`` makes
    resilient connections with the database's policies."""

    def __init__(self, policies: Any) -> None:
        self._policies = policies

    def __getattr__(self, name: str) -> Any:
        return getattr(_pg.Database, name)

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        # A replacement starts from the adapters of the connection it replaces (the
        # psycopg adapter's carry_over): what django.contrib.postgres registered on it
        # (hstore, citext arrays) still loads as it did.
        return _connect(_pg.Database.connect, *args, policies=self._policies, **kwargs)


class DatabaseWrapper(_pg.DatabaseWrapper):  # type: ignore[misc]  # Django is untyped
    def __init__(self, settings_dict: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if not _pg.is_psycopg3:
            raise ImproperlyConfigured(f"{__package__} needs psycopg 3 (pip install psycopg)")
        if settings_dict.get("OPTIONS", {}).get("assume_role"):
            raise ImproperlyConfigured(
                f"{__package__}: OPTIONS['assume_role'] is sent as SET ROLE, which a new "
                "physical connection cannot be given back safely; grant the login role "
                "what it needs, or use django.db.backends.postgresql"
            )
        if settings_dict.get("OPTIONS", {}).get("pool"):
            raise ImproperlyConfigured(
                f"{__package__}: OPTIONS['pool'] would make psycopg_pool's connections, "
                "not resilient ones; leave it out (CONN_MAX_AGE keeps connections) or use "
                "django.db.backends.postgresql"
            )
        super().__init__(settings_dict, *args, **kwargs)

    @async_unsafe  # type: ignore[untyped-decorator]
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        params = dict(conn_params)
        self.Database = _Driver(params.pop("policies", None))
        connection = super().get_new_connection(params)
        if self.settings_dict["OPTIONS"].get("server_side_binding") is not True:
            # Django's server-side cursors bind parameters client-side; made by the
            # proxy (see create_cursor), not on the connection past it.
            connection.server_cursor_factory = _pg.ServerSideCursor
        return connection

    def create_cursor(self, name: str | None = None) -> Any:
        if not name:
            return super().create_cursor(name)
        # Django builds a named cursor on the driver's connection itself, past the proxy
        # and its rules; the proxy makes it instead, of the class Django would use.
        cursor = self.connection.cursor(name, scrollable=False, withhold=self.connection.autocommit)
        loader = self.connection.adapters.get_loader(_pg.TIMESTAMPTZ_OID, _pg.Format.TEXT)
        if self.timezone != loader.timezone:
            _pg.register_tzloader(self.timezone, cursor)
        return cursor

    def is_usable(self) -> bool:
        # Django's health check sends SELECT 1 (a round trip per request); the proxy
        # replaces a dead connection before the next statement, so an open one is usable.
        return self.connection is not None and not self.connection.closed
