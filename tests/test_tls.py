"""TLS: a reconnect uses exactly the TLS settings of the first connect (real MariaDB)."""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import resilient_dbapi
from resilient_dbapi.testing import MariaDBServer

from .conftest import kill

pytestmark = pytest.mark.server


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def _certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "resilient_dbapi test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, paths["key"])
    return paths


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[MariaDBServer, dict[str, Path]]]:
    paths = _certificates(tmp_path)
    server = MariaDBServer(
        extra_args=(
            f"--ssl-ca={paths['ca']}",
            f"--ssl-cert={paths['cert']}",
            f"--ssl-key={paths['key']}",
        )
    )
    with server:
        yield server, paths


def _cipher(conn: Any) -> str:
    cur = conn.cursor()
    cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    return str(cur.fetchone()[1])


def test_reconnect_keeps_tls(tls_server: tuple[MariaDBServer, dict[str, Path]]) -> None:
    server, paths = tls_server
    conn = resilient_dbapi.connect(
        pymysql.connect, **server.connect_kwargs(ssl={"ca": str(paths["ca"])})
    )
    assert _cipher(conn)
    first = conn.thread_id()
    kill(server, first)
    time.sleep(0.6)  # past the skip window: the check of the TLS socket finds the kill
    assert _cipher(conn)
    assert conn.thread_id() != first
    assert conn.reconnects == 1
    time.sleep(0.6)  # an idle, healthy TLS connection is not mistaken for a dead one
    assert _cipher(conn)
    assert conn.reconnects == 1
