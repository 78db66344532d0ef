"""The errors resilient_dbapi raises itself.

Each is raised as an instance of a class that derives from both the error below and the
driver's own ``OperationalError``, so ``except pymysql.err.OperationalError`` keeps
working, SQLAlchemy's disconnect detection recognises it, and ``args[0]`` keeps the
driver's error code.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = [
    "ConcurrentUseError",
    "NoSuitableHostError",
    "OutcomeUnknownError",
    "ResilientError",
    "SessionLostError",
    "TLSDowngradeError",
    "TransactionLostError",
    "bind_error",
]


class ResilientError(Exception):
    """Base of every error resilient_dbapi raises.

    It is raised the way the driver raises its own errors (for PyMySQL ``args`` is
    ``(code, message)``); ``code`` is the driver's error code of the failure that caused
    it (a MySQL error number, a PostgreSQL SQLSTATE).
    """

    @property
    def code(self) -> object:
        if "_code" in self.__dict__:
            return self.__dict__["_code"]
        return self.args[0] if self.args else None


class TransactionLostError(ResilientError):
    """The connection died while a transaction with writes was open.

    The server rolled that work back. Call ``rollback()``, then run the transaction again;
    until then every statement on this connection raises this error again, so the rest of
    the transaction cannot be committed on its own.
    """


class OutcomeUnknownError(ResilientError):
    """The connection died after a write or a ``COMMIT`` was sent.

    The server may or may not have applied it; resilient_dbapi never sends it again.
    Check the data before repeating the work. The next statement gets a fresh connection.
    """


class SessionLostError(ResilientError):
    """The connection died while its session held state a new connection cannot rebuild
    (temporary tables, user variables, ``GET_LOCK`` locks, ``LOCK TABLES``, prepared
    statements); the message names what was lost.

    Raised once, instead of a silent reconnect. The next statement gets a new session,
    with the session settings resilient_dbapi could replay (``SET``, ``USE``, autocommit).
    """


class ConcurrentUseError(ResilientError):
    """Two threads (or tasks) used one connection at the same time.

    Nothing was sent: interleaving two commands would corrupt the protocol. The message
    names the operation in flight. Give each thread its own connection, or a pool.
    """


class NoSuitableHostError(ResilientError):
    """With several hosts: none could be used before the retry policy gave up. The
    message says what each host did (unreachable, read-only, writable); ``code`` is the
    last driver error's. Raised when connecting, so nothing was sent.
    """


class TLSDowngradeError(ResilientError):
    """A new connection was not encrypted, but an earlier one of the same ``connect()``,
    ``creator()`` or drop-in pool used TLS: refused at once and never retried (the
    server stopped offering TLS, or the driver treats TLS as optional and fell back).
    Raised when connecting, before any statement of yours was sent on it.
    """


E = TypeVar("E", bound=ResilientError)
_bound: dict[tuple[type[ResilientError], type[BaseException]], type[ResilientError]] = {}


def bind_error(error: type[E], driver_error: type[BaseException]) -> type[E]:
    """The subclass of both ``error`` and the driver's ``driver_error`` (made once)."""
    key = (error, driver_error)
    cls = _bound.get(key)
    if cls is None:
        cls = type(
            error.__name__,
            (error, driver_error),
            {"__module__": error.__module__, "__qualname__": error.__qualname__},
        )
        _bound[key] = cls
    return cls  # type: ignore[return-value]
