"""Error classification as data: a table from driver error codes to what they mean."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["GENERIC_ERRORS", "MYSQL_ERRORS", "POSTGRES_ERRORS", "ErrorKind", "ErrorTable"]

Code = int | str
"""A driver's error code: a MySQL error number, a PostgreSQL SQLSTATE (``"57P01"``; a
two-character key such as ``"08"`` stands for its whole class), or, for drivers without
codes, the name of the exception class."""


class ErrorKind(enum.Enum):
    """What an error says about the connection and the statement."""

    DEAD = "dead"
    """The connection is gone."""
    CONNECT_TRANSIENT = "connect_transient"
    """Connecting failed for a reason that may pass: retry with backoff."""
    CONNECT_FATAL = "connect_fatal"
    """Connecting will keep failing (bad credentials, unknown database): never retry."""
    TRANSACTION_ROLLED_BACK = "transaction_rolled_back"
    """The server rolled the transaction back (deadlock); the connection is fine."""
    STATEMENT_ABORTED = "statement_aborted"
    """The statement was stopped (timeout, KILL QUERY); the connection is fine."""
    READ_ONLY = "read_only"
    """The server refuses writes (a replica, or a primary during failover)."""
    NOT_READY = "not_ready"
    """The server refused the statement before running it because it serves nothing for
    now (a Galera node outside the primary component or not yet Synced: 1047). Like
    :attr:`READ_ONLY`, it counts only when the server, asked, says so."""
    COMMIT_UNCERTAIN = "commit_uncertain"
    """Committing what the statement did failed after it ran (1180, "error during
    COMMIT": a Galera node that lost the primary component while replicating, when the
    others may have applied it): applied or not is unknown; the connection is replaced."""
    TLS_BROKEN = "tls_broken"
    """A TLS failure: connecting, a refusal by configuration (never retried); on an open
    connection, its encrypted stream broke (the connection is gone, as with DEAD)."""
    OTHER = "other"
    """Anything else: passed to the caller unchanged."""


@dataclass(frozen=True)
class ErrorTable:
    """An immutable map from error code (an int, or a str: a SQLSTATE, its two-character
    class, or an exception class name) to :class:`ErrorKind`.

    Extend or trim it with :meth:`adding` and :meth:`removing`, and put the result in the
    ``policies`` list to replace the driver's default table.
    """

    codes: Mapping[Code, ErrorKind] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for code, kind in self.codes.items():
            if not isinstance(code, int | str) or isinstance(code, bool) or code == "":
                raise TypeError(
                    "ErrorTable: error codes must be int (MySQL) or a non-empty str (SQLSTATE "
                    f"or exception class name), got {code!r}"
                )
            if not isinstance(kind, ErrorKind):
                raise TypeError(f"ErrorTable: code {code} maps to {kind!r}, not an ErrorKind")
        object.__setattr__(self, "codes", MappingProxyType(dict(self.codes)))

    @classmethod
    def of(cls, spec: Mapping[ErrorKind, Iterable[Code]]) -> ErrorTable:
        """Build a table from ``{kind: codes}``."""
        return cls({code: kind for kind, codes in spec.items() for code in codes})

    def kind(self, code: Code | None) -> ErrorKind:
        if code is None:
            return ErrorKind.OTHER
        kind = self.codes.get(code)
        if kind is None and isinstance(code, str) and len(code) == 5:
            kind = self.codes.get(code[:2])  # the SQLSTATE's class
        return ErrorKind.OTHER if kind is None else kind

    def adding(self, kind: ErrorKind, *codes: Code) -> ErrorTable:
        """A copy in which ``codes`` mean ``kind``."""
        return ErrorTable({**self.codes, **dict.fromkeys(codes, kind)})

    def removing(self, *codes: Code) -> ErrorTable:
        """A copy in which ``codes`` mean nothing special (:attr:`ErrorKind.OTHER`)."""
        return ErrorTable({c: k for c, k in self.codes.items() if c not in codes})

    def __hash__(self) -> int:
        return hash(frozenset(self.codes.items()))


# MySQL / MariaDB. Code 0 is PyMySQL's InterfaceError(0, '') on a connection with no socket.
MYSQL_ERRORS = ErrorTable.of(
    {
        ErrorKind.DEAD: [0, 2006, 2013, 2014, 2045, 2055, 4031, 1927, 1053, 1077, 1078, 1079, 1080],
        ErrorKind.CONNECT_TRANSIENT: [2002, 2003, 1040, 1203, 1226],
        ErrorKind.CONNECT_FATAL: [1045, 1049],
        ErrorKind.TRANSACTION_ROLLED_BACK: [1213],
        ErrorKind.STATEMENT_ABORTED: [3024, 1969, 1317, 1205],
        ErrorKind.READ_ONLY: [1290, 1836, 1792],
        # "WSREP has not yet prepared node for application use" (elsewhere, "Unknown
        # command": then the server is asked, says it is ready, and the error is the
        # caller's own).
        ErrorKind.NOT_READY: [1047],
        ErrorKind.COMMIT_UNCERTAIN: [1180],
        # CR_SSL_CONNECTION_ERROR: mysqlclient reports a dead TLS connection with it.
        ErrorKind.TLS_BROKEN: [2026],
    }
)

# PostgreSQL SQLSTATEs. "08000" also stands for a connection psycopg found broken without
# a server error (the socket closed under it).
POSTGRES_ERRORS = ErrorTable.of(
    {
        ErrorKind.DEAD: ["08", "57P01", "57P02", "57P05", "25P03"],
        ErrorKind.CONNECT_TRANSIENT: ["53300", "57P03"],  # too many clients; starting up
        ErrorKind.CONNECT_FATAL: ["28000", "28P01", "3D000"],
        ErrorKind.TRANSACTION_ROLLED_BACK: ["40001", "40P01"],
        ErrorKind.STATEMENT_ABORTED: ["57014", "55P03"],
        ErrorKind.READ_ONLY: ["25006"],
    }
)

# Drivers resilient_dbapi has no adapter for: only the PEP 249 exception class is known.
# OperationalError may also mean a deadlock; treating it as "connection dead" costs an
# error the caller would have seen anyway, never a write sent twice.
GENERIC_ERRORS = ErrorTable.of({ErrorKind.DEAD: ["OperationalError", "InterfaceError"]})
