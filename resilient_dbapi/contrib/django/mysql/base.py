"""Django's MySQL/MariaDB backend (on mysqlclient, or whatever ``MySQLdb`` is), with each
connection made by :func:`resilient_dbapi.connect`::

    DATABASES = {"default": {
        "ENGINE": "resilient_dbapi.contrib.django.mysql",
        "NAME": "shop", "USER": "app", "PASSWORD": "...", "HOST": "db",
        "CONN_MAX_AGE": 600,
        "OPTIONS": {"policies": "web"},   # a profile's name or path; optional
    }}

Everything else is Django's own backend: its SQL, its session settings (replayed on each
new physical connection), its errors. ``CONN_HEALTH_CHECKS`` costs nothing here: the
proxy checks the connection before each statement itself (a socket poll, no round trip).
"""

from __future__ import annotations

from typing import Any

from django.db.backends.mysql import base as _mysql
from django.utils.asyncio import async_unsafe

from ....connection import connect as _connect

__all__ = ["DatabaseWrapper"]


class DatabaseWrapper(_mysql.DatabaseWrapper):  # type: ignore[misc]  # Django is untyped
    @async_unsafe  # type: ignore[untyped-decorator]
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        params = dict(conn_params)
        policies = params.pop("policies", None)
        connection: Any = _connect(_mysql.Database.connect, policies=policies, **params)
        # As Django's own: mysqlclient's bytes encoder is a leftover it removes.
        if connection.encoders.get(bytes) is bytes:
            connection.encoders.pop(bytes)
        return connection

    def is_usable(self) -> bool:
        # Django's health check pings (a round trip per request); the proxy replaces a
        # dead connection before the next statement, so an open one is usable.
        return self.connection is not None and bool(self.connection.open)
