"""A drop-in for the ``pymysql`` module whose connections are resilient.

``from resilient_dbapi import pymysql`` instead of ``import pymysql``: ``connect()`` (and
its alias ``Connect``) returns a :class:`~resilient_dbapi.ResilientConnection` with the
default policies (or the profile named by the ``RESILIENT_DBAPI_POLICY`` environment
variable); every other name is PyMySQL's own. ``Connection`` stays PyMySQL's class, so
``isinstance`` checks and subclasses keep their meaning.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import pymysql as _pymysql
from pymysql import *
from pymysql import (
    VERSION,
    VERSION_STRING,
    __version__,
    apilevel,
    connections,
    constants,
    converters,
    cursors,
    err,
    get_client_info,
    paramstyle,
    threadsafety,
    times,
    version_info,
)

from ._dropin import POLICY_ENV as POLICY_ENV  # the name callers set
from ._dropin import chosen_policies, driver_connect
from .connection import ResilientConnection
from .connection import connect as _resilient_connect
from .events import Listener
from .policies import Policy

# PyMySQL's public names, plus the submodules and constants its __all__ leaves out.
__all__ = [
    "BINARY",
    "DATE",
    "FIELD_TYPE",
    "NULL",
    "NUMBER",
    "ROWID",
    "STRING",
    "TIME",
    "TIMESTAMP",
    "VERSION",
    "VERSION_STRING",
    "Binary",
    "Connect",
    "Connection",
    "DBAPISet",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "MySQLError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Warning",
    "__version__",
    "apilevel",
    "connect",
    "connections",
    "constants",
    "converters",
    "cursors",
    "err",
    "get_client_info",
    "install_as_MySQLdb",
    "paramstyle",
    "threadsafety",
    "times",
    "version_info",
]

_driver_connect = _pymysql.connect


def connect(
    *args: Any,
    policies: Sequence[Policy] | str | None = None,
    on_connect: Sequence[str] | None = None,
    listeners: Sequence[Listener] | None = None,
    **kwargs: Any,
) -> ResilientConnection:
    """``pymysql.connect`` with the default policies, or the profile in
    $RESILIENT_DBAPI_POLICY; ``policies=`` (objects, or a profile's name or path),
    ``on_connect=`` and ``listeners=`` as for :func:`resilient_dbapi.connect` (Django's
    ``OPTIONS`` reach them)."""
    return _resilient_connect(
        driver_connect(_pymysql.connect, connect, _driver_connect),
        *args,
        policies=chosen_policies(policies),
        on_connect=on_connect,
        listeners=listeners,
        **kwargs,
    )


Connect = connect


def install_as_MySQLdb() -> None:
    """Make ``import MySQLdb`` give this module (Django's MySQL backend then uses it)."""
    module = sys.modules[__name__]
    sys.modules["MySQLdb"] = module
    for name in ("connections", "constants", "converters", "cursors", "err", "times"):
        sys.modules[f"MySQLdb.{name}"] = getattr(_pymysql, name)
    for name in ("CLIENT", "FIELD_TYPE", "FLAG", "CR", "ER", "SERVER_STATUS", "COMMAND"):
        submodule = sys.modules.get(f"pymysql.constants.{name}")
        if submodule is not None:
            sys.modules[f"MySQLdb.constants.{name}"] = submodule
