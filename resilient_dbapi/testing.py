"""A throwaway local MariaDB server, for the test suite and the benchmarks.

``MariaDBServer()`` initialises a temporary data directory and runs Debian's
``mariadbd`` on a free loopback port; it starts in about a second and is removed on
``stop()``. Nothing here is needed to use resilient_dbapi itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["MariaDBServer", "ServerUnavailable", "find_mariadbd", "free_port"]


class ServerUnavailable(RuntimeError):
    """No MariaDB server can be started here; the message says what is missing."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


class MariaDBServer:
    """One throwaway ``mariadbd`` on 127.0.0.1 with a temporary data directory."""

    def __init__(self, *, extra_args: tuple[str, ...] = (), startup_timeout: float = 30.0):
        self.server_bin, self.install_bin = find_mariadbd()
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.basedir = Path(tempfile.mkdtemp(prefix="rdbapi-mariadb-"))
        self.datadir = self.basedir / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self._user_args = ["--user=root"] if os.geteuid() == 0 else []
        self._install()

    # -- life cycle -------------------------------------------------------------------

    def _install(self) -> None:
        result = subprocess.run(
            [
                self.install_bin,
                "--no-defaults",
                f"--datadir={self.datadir}",
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

    def start(self) -> MariaDBServer:
        if self.process is not None and self.process.poll() is None:
            return self
        log = self.basedir / "error.log"
        self.process = subprocess.Popen(
            [
                self.server_bin,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.basedir / 'sock'}",
                f"--pid-file={self.basedir / 'pid'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                *self._user_args,
                "--skip-name-resolve",
                f"--log-error={log}",
                "--innodb-buffer-pool-size=32M",
                "--max-connections=500",
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise ServerUnavailable(f"mariadbd exited with {self.process.returncode}: {tail}")
            try:
                self.admin().close()
                return self
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerUnavailable(
                        f"mariadbd did not accept connections within {self.startup_timeout} s"
                    ) from None
                time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM: a clean shutdown; ``kill``: SIGKILL, a crash)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
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
        self.stop()
        shutil.rmtree(self.basedir, ignore_errors=True)

    def __enter__(self) -> MariaDBServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    # -- using it -----------------------------------------------------------------------

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect``."""
        return {"host": "127.0.0.1", "port": self.port, "user": "root", "password": "", **overrides}

    def admin(self, **overrides: Any) -> Any:
        """A plain PyMySQL connection with autocommit on, for setting up and killing."""
        import pymysql

        return pymysql.connect(
            **self.connect_kwargs(autocommit=True, connect_timeout=5, **overrides)
        )
