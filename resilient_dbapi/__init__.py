"""resilient_dbapi: DB-API 2.0 connections that survive dropped connections safely.

Replace ``pymysql.connect(...)`` with ``resilient_dbapi.connect(pymysql.connect, ...)``
(or import :mod:`resilient_dbapi.pymysql` instead of ``pymysql``). A statement is sent
again only when that provably cannot apply a write twice; otherwise a precise error,
which is also the driver's own ``OperationalError``, says what happened.
"""

import logging

from . import aio, events, policies
from .connection import ResilientConnection, connect, creator
from .cursor import ResilientCursor
from .error_kinds import MYSQL_ERRORS, ErrorKind, ErrorTable
from .errors import (
    ConcurrentUseError,
    NoSuitableHostError,
    OutcomeUnknownError,
    ResilientError,
    SessionLostError,
    TLSDowngradeError,
    TransactionLostError,
)
from .hosts import HostProbe
from .policies import DeadPeerTimeout, MaxAge, PingOnCheckout, ReplayTransaction, RetryOnError
from .statements import REPLAYABLE, replayable
from .transaction import run_transaction

__version__ = "0.1.0"

# A library's loggers get no handler but this one: what is shown is the application's
# choice (and without it, Python's last-resort handler would print our warnings).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "MYSQL_ERRORS",
    "REPLAYABLE",
    "ConcurrentUseError",
    "DeadPeerTimeout",
    "ErrorKind",
    "ErrorTable",
    "HostProbe",
    "MaxAge",
    "NoSuitableHostError",
    "OutcomeUnknownError",
    "PingOnCheckout",
    "ReplayTransaction",
    "ResilientConnection",
    "ResilientCursor",
    "ResilientError",
    "RetryOnError",
    "SessionLostError",
    "TLSDowngradeError",
    "TransactionLostError",
    "__version__",
    "aio",
    "connect",
    "creator",
    "events",
    "policies",
    "replayable",
    "run_transaction",
]
