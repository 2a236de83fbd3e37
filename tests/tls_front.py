"""Test certificates and a TLS front on loopback: RTMPS (or HTTPS) terminated before a plain
server, as a platform's ingest or a CDN does it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from avatarcast.output._tls_relay import _relay


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    path.mkdir(parents=True, exist_ok=True)
    pem = Pem(path / "cert.pem", path / "key.pem")
    pem.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True)
    else:
        try:  # an address is named by an IP SAN (a TLS client checks 127.0.0.1 against it)
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(subject))
        except ValueError:
            alt = x509.DNSName(subject)
        san = x509.SubjectAlternativeName([alt])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_ca(path: Path) -> tuple[Pem, tuple[str, ec.EllipticCurvePrivateKey]]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = "avatarcast test CA"
    return _write(path, _cert(name, key, None, ca=True), key), (name, key)


def make_leaf(path: Path, host: str, ca: tuple[str, ec.EllipticCurvePrivateKey]) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    return _write(path, _cert(host, key, ca, ca=False), key)


def make_self_signed(path: Path, host: str) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    return _write(path, _cert(host, key, None, ca=False), key)


class TlsFront:
    """Accepts TLS on a loopback port with ``pem`` and relays each connection to
    ``127.0.0.1:upstream`` in plain. ``handshakes`` counts completed TLS handshakes."""

    def __init__(self, pem: Pem, upstream: int) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(pem.cert, pem.key)
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.handshakes = 0
        self.attempts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            self.attempts += 1
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            tls = self._context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        self.handshakes += 1
        try:
            with socket.create_connection(("127.0.0.1", self._upstream)) as plain:
                _relay(plain, tls)
        except OSError:
            pass
        finally:
            tls.close()

    def close(self) -> None:
        self._listener.close()
