"""Throwaway local MariaDB and PostgreSQL servers.

``MariaDBServer()`` initialises a temporary data directory and runs Debian's ``mariadbd``
on a free loopback port; it starts in about a second and is removed on ``remove()``.
``PostgresServer()`` does the same with Debian's PostgreSQL (``initdb`` and ``postgres``,
run as the ``postgres`` user when we are root). Both are a :class:`ServerProcess`.
"""

from __future__ import annotations

import abc
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Self

__all__ = [
    "AppUser",
    "ExistingServer",
    "MariaDBServer",
    "PostgresServer",
    "ServerProcess",
    "ServerUnavailable",
    "find_mariadbd",
    "find_postgres",
    "free_port",
]


class ServerUnavailable(RuntimeError):
    """No such server can be started here; the message says what is missing."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess(abc.ABC):
    """A server process on a free loopback port with a temporary directory of its own
    (its data directory is ``datadir``, its log ``log_path``): what the launchers share.

    A subclass initialises the data directory in its ``__init__``, says how to spawn the
    server (``_spawn``) and how to tell it accepts connections (``_ready``)."""

    program: ClassVar[str]
    """The server's name in error messages."""
    log_name: ClassVar[str]
    """The server's log, in the temporary directory."""
    stop_signal: ClassVar[signal.Signals]
    """A clean shutdown."""
    kill_signal: ClassVar[signal.Signals]
    """A crash."""
    discard_by_kill: ClassVar[bool]
    """Whether ``remove()`` and a start that timed out stop with ``kill_signal``."""
    poll_interval: ClassVar[float] = 0.01
    """Seconds between two looks at a starting server."""

    def __init__(self, *, prefix: str, extra_args: tuple[str, ...], startup_timeout: float):
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.basedir = Path(tempfile.mkdtemp(prefix=prefix))
        self.datadir = self.basedir / "data"
        self.log_path = self.basedir / self.log_name
        self.process: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def _spawn(self) -> subprocess.Popen[bytes]:
        """Start the server process (it logs to ``log_path``)."""

    @abc.abstractmethod
    def _ready(self) -> bool:
        """Whether the server accepts connections now."""

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self.process is not None and self.process.poll() is None:
            return self
        self.process = self._spawn()
        deadline = time.monotonic() + self.startup_timeout
        while not self._ready():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise ServerUnavailable(f"{self.program} exited with {code}: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop(kill=self.discard_by_kill)
                raise ServerUnavailable(
                    f"{self.program} did not accept connections within "
                    f"{self.startup_timeout} s: {self._log_tail()}"
                )
            time.sleep(self.poll_interval)
        return self

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: ``stop_signal`` (a clean shutdown), or ``kill_signal`` with
        ``kill`` (a crash); SIGKILL if it is still running a minute later."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(self.kill_signal if kill else self.stop_signal)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.process = None

    def restart(self, *, down_for: float = 0.0, kill: bool = False) -> None:
        self.stop(kill=kill)
        if down_for:
            time.sleep(down_for)
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop(kill=self.discard_by_kill)
        shutil.rmtree(self.basedir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


class ExistingServer:
    """A MariaDB or MySQL server someone else runs (named by a DSN): connected to, never
    restarted. Its ``connect_kwargs()`` and ``admin()`` are those of :class:`MariaDBServer`."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password

    @classmethod
    def from_dsn(cls, dsn: str) -> ExistingServer:
        """``mysql://user:password@host:port`` (the user root and port 3306 if left out)."""
        import urllib.parse

        url = urllib.parse.urlsplit(dsn)
        if url.scheme not in ("mysql", "mariadb"):
            raise ValueError(f"a MariaDB DSN is mysql://user:password@host:port, not {dsn!r}")
        return cls(
            url.hostname or "127.0.0.1",
            url.port or 3306,
            urllib.parse.unquote(url.username or "root"),
            urllib.parse.unquote(url.password or ""),
        )

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            **overrides,
        }

    def admin(self, **overrides: Any) -> Any:
        import pymysql

        return pymysql.connect(
            **self.connect_kwargs(autocommit=True, connect_timeout=5, **overrides)
        )

    def restart(self, *, down_for: float = 0.0, kill: bool = False) -> None:
        raise ServerUnavailable(
            f"the server at {self.host}:{self.port} is not ours to restart: use a throwaway "
            "one (MariaDBServer, or the mariadb_server_own fixture)"
        )


class AppUser:
    """What the MariaDB set-ups for failover tests share: the database ``app`` and the
    user ``app`` (no SUPER, so ``read_only`` binds it, as it binds an application)."""

    database: str = "app"
    user: str = "app"
    password: str = "app-pw"

    def create_app(self, admin: Any) -> None:
        """Create the database and the user through ``admin`` (a root PyMySQL connection)."""
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.database}`")
            password = admin.escape(self.password)
            cur.execute(f"CREATE USER '{self.user}'@'%' IDENTIFIED BY {password}")
            cur.execute(f"GRANT ALL ON `{self.database}`.* TO '{self.user}'@'%'")

    def app_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """The app user's ``pymysql.connect`` arguments, without host and port."""
        return {
            "user": self.user,
            "password": self.password,
            "database": self.database,
            **overrides,
        }

    def table(self, name: str) -> str:
        """``name`` qualified with the app database."""
        return f"{self.database}.{name}"


# -- MariaDB --------------------------------------------------------------------------------


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def find_mariadbd() -> tuple[str, str]:
    """Paths of ``mariadbd`` and ``mariadb-install-db``; ServerUnavailable if missing."""
    server = _which("mariadbd") or _which("mysqld")
    install = _which("mariadb-install-db") or _which("mysql_install_db")
    if not server or not install:
        raise ServerUnavailable(
            "mariadbd and mariadb-install-db were not found; install Debian's "
            "mariadb-server package (apt-get install mariadb-server)"
        )
    return server, install


class MariaDBServer(ServerProcess):
    """One throwaway ``mariadbd`` on 127.0.0.1 with a temporary data directory.

    ``stop()`` sends SIGTERM (a clean shutdown), ``stop(kill=True)`` SIGKILL (a crash);
    ``remove()`` shuts down cleanly."""

    program = "mariadbd"
    log_name = "error.log"
    stop_signal = signal.SIGTERM
    kill_signal = signal.SIGKILL
    discard_by_kill = False
    poll_interval = 0.02  # each look is a connection attempt
    run_as: ClassVar[str] = "root"
    """The system user the server runs as when we are root."""

    def __init__(
        self,
        *,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 30.0,
        prefix: str = "rdbapi-mariadb-",
    ):
        self.server_bin, self.install_bin = find_mariadbd()
        super().__init__(prefix=prefix, extra_args=extra_args, startup_timeout=startup_timeout)
        self._user_args = [f"--user={self.run_as}"] if os.geteuid() == 0 else []
        if self._user_args and self.run_as != "root":
            self.datadir.mkdir()
            for path in (self.basedir, self.datadir):
                shutil.chown(path, self.run_as, self.run_as)
        self._install()

    # -- life cycle -------------------------------------------------------------------

    def _install(self) -> None:
        result = subprocess.run(
            [
                self.install_bin,
                "--no-defaults",
                f"--datadir={self.datadir}",
                # A starting mariadbd deletes every #sql* file in its tmpdir, including
                # the temporary tables of a bootstrap running meanwhile: keep them apart.
                f"--tmpdir={self.basedir}",
                *self._user_args,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise ServerUnavailable(
                f"mariadb-install-db failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace')[-2000:]}"
            )

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                self.server_bin,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.basedir / 'sock'}",
                f"--pid-file={self.basedir / 'pid'}",
                f"--tmpdir={self.basedir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                *self._user_args,
                "--skip-name-resolve",
                f"--log-error={self.log_path}",
                "--innodb-buffer-pool-size=32M",
                "--max-connections=500",
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _ready(self) -> bool:
        try:
            self.admin().close()
        except Exception:
            return False
        return True

    # -- using it -----------------------------------------------------------------------

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect``."""
        return {"host": "127.0.0.1", "port": self.port, "user": "root", "password": "", **overrides}

    def admin(self, **overrides: Any) -> Any:
        """A plain PyMySQL connection with autocommit on, for setting up and killing.
        Without TLS: PyMySQL would otherwise build a TLS context at every connect (it
        loads the system's CA certificates, tens of milliseconds), and readiness and
        cluster-state polls connect often."""
        import pymysql

        kwargs = {"autocommit": True, "connect_timeout": 5, "ssl_disabled": True, **overrides}
        return pymysql.connect(**self.connect_kwargs(**kwargs))


# -- PostgreSQL ---------------------------------------------------------------------------


def _pg_version_key(bindir: str) -> tuple[int, ...]:
    name = Path(bindir).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in name.split(".") if part.isdigit()) or (0,)


def find_postgres() -> tuple[str, str]:
    """Paths of ``postgres`` and ``initdb``; ServerUnavailable if missing.

    Looks in ``$RDBAPI_PG_BINDIR`` if set, then on ``PATH``, then in Debian's
    ``/usr/lib/postgresql/<version>/bin`` (newest version first).
    """
    candidates: list[str] = []
    if os.environ.get("RDBAPI_PG_BINDIR"):
        candidates.append(os.environ["RDBAPI_PG_BINDIR"])
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_pg_version_key, reverse=True)
    for bindir in candidates:
        server, initdb = Path(bindir) / "postgres", Path(bindir) / "initdb"
        if os.access(server, os.X_OK) and os.access(initdb, os.X_OK):
            return str(server), str(initdb)
    raise ServerUnavailable(
        "PostgreSQL's postgres and initdb were not found (looked on PATH, in "
        "/usr/lib/postgresql/*/bin and $RDBAPI_PG_BINDIR); install Debian's "
        "postgresql package (apt-get install postgresql)"
    )


class PostgresServer(ServerProcess):
    """One throwaway ``postgres`` on 127.0.0.1 with a temporary data directory.

    Trust authentication for local and loopback connections; the superuser is ``postgres``
    and the database ``postgres``. The unix socket lives in the temporary directory. Tuned
    to start fast and to be thrown away: fsync off, small shared buffers.

    When we are root, ``initdb`` and ``postgres`` run as the ``postgres`` user (they refuse
    to run as root) and the temporary directory is handed to that user.

    ``stop()`` is a fast shutdown (SIGINT, ``pg_ctl stop -m fast``): every backend is
    terminated with 57P01 and the server checkpoints. ``stop(kill=True)`` is an immediate
    shutdown (SIGQUIT, ``pg_ctl stop -m immediate``), like a crash: backends quit at once
    and the next start runs crash recovery. ``remove()`` shuts down immediately.
    """

    program = "postgres"
    log_name = "postgres.log"
    stop_signal = signal.SIGINT
    kill_signal = signal.SIGQUIT
    discard_by_kill = True
    user = "postgres"
    dbname = "postgres"

    def __init__(
        self,
        *,
        extra_args: tuple[str, ...] = (),
        settings: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
        max_connections: int = 300,
    ):
        """``settings``: extra ``-c name=value`` server settings (``extra_args``: raw args)."""
        self.server_bin, self.initdb_bin = find_postgres()
        self.settings = dict(settings or {})
        self.max_connections = max_connections
        self._run_as: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable(
                    "running as root, and there is no postgres user to run PostgreSQL as "
                    "(Debian's postgresql package creates it)"
                ) from None
            self._run_as = "postgres"
        super().__init__(
            prefix="rdbapi-postgres-", extra_args=extra_args, startup_timeout=startup_timeout
        )
        self.socket_dir = self.basedir
        if self._run_as is not None:
            shutil.chown(self.basedir, user=self._run_as, group=self._run_as)
        try:
            self._initdb()
        except BaseException:
            shutil.rmtree(self.basedir, ignore_errors=True)
            raise

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that drop to the postgres user when we are root."""
        if self._run_as is None:
            return {}
        entry = pwd.getpwnam(self._run_as)
        env = {**os.environ, "HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "env": env}

    # -- life cycle -------------------------------------------------------------------

    def _initdb(self) -> None:
        self._run_tool(
            self.initdb_bin,
            f"--pgdata={self.datadir}",
            f"--username={self.user}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )

    def _run_tool(self, program: str, *args: str) -> None:
        """Run one of PostgreSQL's programs (as the postgres user when we are root) in the
        temporary directory; ServerUnavailable, with its output, if it fails."""
        name = Path(program).name
        try:
            result = subprocess.run(
                [program, *args],
                cwd=self.basedir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
                timeout=120,
                **self._as_user(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServerUnavailable(f"{name} could not run: {exc}") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise ServerUnavailable(f"{name} failed ({result.returncode}): {output[-2000:]}")

    def _server_args(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": str(self.max_connections),
            "shared_buffers": "16MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "checkpoint_timeout": "1h",
            "max_wal_size": "1GB",
            "autovacuum": "off",
            "dynamic_shared_memory_type": "mmap",
            "logging_collector": "off",
            "log_min_messages": "warning",
            **self.settings,
        }
        args = [self.server_bin, "-D", str(self.datadir)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        return [*args, *self.extra_args]

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                self._server_args(),
                cwd=self.basedir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                **self._as_user(),
            )

    def _ready(self) -> bool:
        """The postmaster says it accepts connections (what ``pg_ctl start -w`` checks)."""
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        # Line 8 is the postmaster status ("ready", "starting", "stopping", "standby").
        return (
            len(lines) >= 8 and lines[0].strip() == str(self._pid()) and lines[7].strip() == "ready"
        )

    def _pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    # -- using it -----------------------------------------------------------------------

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (TCP on 127.0.0.1)."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            **overrides,
        }

    def admin(self, **overrides: Any) -> Any:
        """A plain psycopg connection with autocommit on, for setting up and killing."""
        import psycopg

        kwargs = self.connect_kwargs(**overrides)
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(**kwargs)
