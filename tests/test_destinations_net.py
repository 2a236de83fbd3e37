"""Where a push may go and whom it trusts: RTMPS certificates and the SSRF check at connect time.

OWASP API8:2023 (Security Misconfiguration): an rtmps push verifies the certificate chain and
the host name. OWASP API7:2023 (Server Side Request Forgery): the host is resolved and checked
when the push connects, the push goes to the checked address, and a refusal says nothing about
what answers there.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avatarcast.frames import StreamFormat
from avatarcast.netpolicy import NetPolicy
from avatarcast.output.encoder import Encoder
from avatarcast.output.rtmp import RtmpSink
from rtmp_server import RtmpServer, free_port
from synthetic_programme import ffprobe, frames
from tls_front import TlsFront, make_ca, make_leaf, make_self_signed

FMT = StreamFormat(metadata={"title": "Live demo"})
KEY = "sk_live_0a1b2c3d4e5f"
#: "localhost" is loopback: allowed by name, as a compose file allows its own RTMP service
LOCALHOST_ONLY = NetPolicy(private_hosts=frozenset({"localhost"}))


async def _until(sink: RtmpSink, cond: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = sink.status()
        if cond(status):
            return status
        await asyncio.sleep(0.05)
    return sink.status()


async def _refusal(url: str, policy: NetPolicy, **kwargs: Any) -> dict[str, Any]:
    sink = RtmpSink(url, metadata={}, max_retries=0, policy=policy, **kwargs)
    await sink.open(Encoder(FMT).headers)
    status = await _until(sink, lambda s: s["state"] == "failed")
    await sink.aclose()
    assert status["state"] == "failed", status
    assert KEY not in str(status)
    return status


async def test_rtmps_refuses_wrong_or_unknown_certificates_api8_2023(tmp_path: Path) -> None:
    """API8:2023: a self-signed certificate for another name, and one from a CA not trusted
    here, are refused before the stream key is sent; the error names the destination."""
    ca, signer = make_ca(tmp_path / "ca")
    fronts = {
        "other name": TlsFront(make_self_signed(tmp_path / "other", "other.example"), free_port()),
        "unknown CA": TlsFront(make_leaf(tmp_path / "leaf", "localhost", signer), free_port()),
    }
    errors = {}
    for what, front in fronts.items():
        url = f"rtmps://localhost:{front.port}/live/{KEY}"
        errors[what] = (await _refusal(url, LOCALHOST_ONLY))["last_error"]
        assert front.attempts == 1 and front.handshakes == 0, what  # refused in the handshake
        front.close()
    for what, error in errors.items():
        assert error.startswith("destination refused: rtmps://localhost:"), (what, error)
        assert "certificate not accepted" in error, (what, error)
    assert "self-signed" in errors["other name"] or "self signed" in errors["other name"]
    assert "local issuer" in errors["unknown CA"], errors
    # the same leaf is refused for a name it was not issued for, even with its CA trusted
    front = TlsFront(make_leaf(tmp_path / "leaf2", "ingest.example", signer), free_port())
    url = f"rtmps://localhost:{front.port}/live/{KEY}"
    error = (await _refusal(url, LOCALHOST_ONLY, ca_file=str(ca.cert)))["last_error"]
    assert "certificate not accepted" in error and "localhost" in error, error
    front.close()


async def test_rtmps_with_the_configured_ca_reads_back_api8_2023(
    tmp_path: Path, rtmp_server: RtmpServer
) -> None:
    """API8:2023: a certificate from the CA in ``tls.ca_file`` is accepted (SNI and name
    checked through the relay) and what was pushed plays back from the ingest."""
    ca, signer = make_ca(tmp_path / "ca")
    front = TlsFront(make_leaf(tmp_path / "leaf", "localhost", signer), rtmp_server.port)
    enc = Encoder(FMT)
    sink = RtmpSink(
        f"rtmps://localhost:{front.port}/live/{KEY}",
        metadata={},
        policy=LOCALHOST_ONLY,
        ca_file=str(ca.cert),
        backoff_start=0.25,
    )
    await sink.open(enc.headers)
    reading = asyncio.create_task(
        asyncio.to_thread(ffprobe, rtmp_server.url(KEY), "-show_streams", timeout=30)
    )
    t0 = time.monotonic()
    for frame in frames(FMT, 25):
        for packet in await asyncio.to_thread(enc.encode, frame):
            await sink.write(packet)
        await asyncio.sleep(max(0.0, t0 + (frame.pts + 1) / FMT.fps - time.monotonic()))
        if reading.done():
            break
    info = await reading
    status = sink.status()
    await sink.aclose()
    front.close()
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["video"]["width"] == 1280
    assert streams["audio"]["codec_name"] == "aac"
    assert status["state"] == "connected", status  # bytes_sent is reported every 25 packets
    assert front.handshakes >= 1


async def test_push_time_check_refuses_private_addresses_alike_api7_2023() -> None:
    """API7:2023: a destination resolving to loopback when the push connects is refused
    without a connection; an open and a closed port give the same error (no port scanner)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    open_port, closed_port = listener.getsockname()[1], free_port()
    public_only = NetPolicy()
    errors = [
        (await _refusal(f"rtmp://127.0.0.1:{port}/live/{KEY}", public_only))["last_error"]
        for port in (open_port, closed_port)
    ]
    try:
        listener.accept()
        connected = True
    except TimeoutError:
        connected = False
    listener.close()
    assert not connected
    assert errors[0] == errors[1], errors
    assert errors[0] == (
        "destination refused: host '127.0.0.1' is not a public address (private, loopback, "
        "link-local or reserved addresses are refused)"
    )
    for url in ("rtmp://localhost/live/", "rtmps://metadata.internal/app/"):
        error = (await _refusal(url + KEY, public_only))["last_error"]
        assert "is not a public address" in error, error
    error = (await _refusal(f"rtmp://no-such-host.invalid/live/{KEY}", public_only))["last_error"]
    assert error == "destination refused: host 'no-such-host.invalid' does not resolve"


def test_the_policy_hands_out_the_checked_address_api7_2023() -> None:
    """API7:2023: the push connects to the address that was checked, never a new lookup."""
    target = LOCALHOST_ONLY.target("localhost", 1935)
    assert target.host == "localhost" and "127.0.0.1" in target.addresses
    assert set(target.addresses) <= {"127.0.0.1", "::1"}
    # it connects to a checked address, whichever answers first
    listener = socket.create_server(("127.0.0.1", 0))
    answering = LOCALHOST_ONLY.target("localhost", listener.getsockname()[1])
    with answering.connect(2.0) as conn:
        assert conn.getpeername()[0] == "127.0.0.1"
    listener.close()
    assert NetPolicy().check_host("8.8.8.8")  # an address literal is itself
    for host in ("10.0.0.5", "169.254.169.254", "::ffff:127.0.0.1", "fd00::1", "224.0.0.1"):
        try:
            NetPolicy().check_host(host)
        except ValueError as e:
            assert "not a public address" in str(e)
        else:
            raise AssertionError(f"{host} was allowed")
