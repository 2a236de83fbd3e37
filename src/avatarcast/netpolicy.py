"""Which network addresses the server may reach on a tenant's behalf (OWASP API7:2023, SSRF).

A tenant names hosts (a destination, an image URL); the server then connects to them. A name
is checked where it comes in *and again when the connection is made*, and the connection goes
to the address that was checked: a name that resolved to a public address when it was saved
may point at ``127.0.0.1`` or ``169.254.169.254`` by the time a stream starts (DNS rebinding),
and connecting to whatever the resolver says then would reach the server's own network.

Refusals are generic on purpose: they never say which address or port was found, so error
fields cannot be used to map the private network.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass, field

__all__ = [
    "AddressRefused",
    "HostNotFound",
    "NetPolicy",
    "NetRefused",
    "Target",
    "client_context",
    "netloc",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")


class NetRefused(ValueError):
    """A host this server will not connect to; the message is safe to show to the tenant."""


class HostNotFound(NetRefused):
    pass


class AddressRefused(NetRefused):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: ``addresses`` were checked; ``host`` stays for TLS (SNI) and protocols."""

    host: str
    addresses: tuple[str, ...]
    port: int

    def connect(self, timeout: float) -> socket.socket:
        """A TCP connection to the first checked address that answers (as ``create_connection``
        tries each address of a name), never to one looked up again."""
        error: OSError | None = None
        for address in self.addresses:
            try:
                return socket.create_connection((address, self.port), timeout)
            except OSError as e:
                error = e
        raise error or OSError(f"no address for {self.host!r}")


def netloc(address: str, port: int) -> str:
    """``address:port`` as it goes into a URL (IPv6 in brackets)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class NetPolicy:
    """``allow_private``: every address (a lab, the tests); ``private_hosts``: these names (not
    addresses) may resolve to private addresses, e.g. a compose file's own RTMP service."""

    allow_private: bool = False
    private_hosts: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, object]:
        return {"allow_private": self.allow_private, "private_hosts": sorted(self.private_hosts)}

    @classmethod
    def from_json(cls, raw: object) -> NetPolicy:
        if not isinstance(raw, dict):
            return cls()
        hosts = raw.get("private_hosts") or ()
        return cls(
            allow_private=bool(raw.get("allow_private")),
            private_hosts=frozenset(str(h).lower() for h in hosts),
        )

    def check_host(self, host: str) -> list[Address]:
        """The addresses ``host`` resolves to now, all of them allowed; raises NetRefused."""
        name = host.lower().rstrip(".")
        exempt = self.allow_private or name in self.private_hosts
        refused = AddressRefused(
            f"host {host!r} is not a public address (private, loopback, link-local or "
            "reserved addresses are refused)"
        )
        if not exempt and (name == "localhost" or name.endswith(_LOCAL_SUFFIXES)):
            raise refused
        addresses = resolve(host)
        if not addresses:
            raise HostNotFound(f"host {host!r} does not resolve")
        if not exempt and any(not _public(a) for a in addresses):
            raise refused
        return addresses

    def target(self, host: str, port: int) -> Target:
        """Resolve and check ``host`` now; connect to the returned addresses, nothing else."""
        return Target(host, tuple(str(a) for a in self.check_host(host)), port)


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """TLS for connections out: the system CA bundle plus ``ca_file``, host names checked."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(host: str) -> list[Address]:
    """Every address ``host`` resolves to (an IP literal is itself); [] when it does not."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    out: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in out:
            out.append(address)
    return out
