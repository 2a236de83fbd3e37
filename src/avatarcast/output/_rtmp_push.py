"""The RTMP push loop, run by ``RtmpSink`` as ``python -m avatarcast.output._rtmp_push IN OUT``.

It lives in its own process because PyAV opens an output (TCP connect, TLS and RTMP
handshakes, the FLV header) while holding the GIL and with no timeout: a destination that
accepts the connection and then says nothing would freeze every thread of the programme.
Here it can only freeze this process, which the parent then kills.

IN and OUT are pipe descriptors. Messages in: a pickled ``PushConfig`` first, then raw byte
messages: ``P`` + packed packets (``pack_packets``: a fixed header per packet and its data,
no pickling, one message per programme frame), ``R`` (resync), ``S`` (stop). Out: status dicts.

Timestamps on the wire are the programme's own while they fit, and count from the connection
after that: FLV and RTMP carry milliseconds in 32 bits, and FFmpeg's FLV muxer keeps 31 of
them, so a programme time past 2^31 ms (24.9 days) wrapped to 0 in the middle of a stream
(measured: a stream started at 49.7 days read back from nginx-rtmp at 24.85 days). A
connection opened at a programme time below ``max_connection_s`` (a day below the wrap)
sends programme time; one opened later sends its first keyframe at
:data:`CONNECTION_LEAD_S`. A connection whose timestamps reach ``max_connection_s`` is closed
and opened again at the next keyframe, which then starts at the lead, as a reconnect would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import select
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av
from av.container import OutputContainer

from avatarcast.frames import EncodedPacket
from avatarcast.netpolicy import NetPolicy, NetRefused, Target
from avatarcast.netpolicy import netloc as url_netloc
from avatarcast.output._mux import add_streams, to_av_packet
from avatarcast.output.base import StreamHeaders
from avatarcast.threads import set_os_thread_name


class DestinationRefused(Exception):
    """The destination cannot be pushed to as it is: a refused address, a bad certificate."""


#: where a connection's first keyframe goes, in seconds: audio muxed just before it stays >= 0
CONNECTION_LEAD_S = Fraction(1)
#: FFmpeg's FLV muxer writes 31 bits of milliseconds; a connection ends a day before that
FLV_TIMESTAMP_LIMIT_S = Fraction(2**31, 1000)
MAX_CONNECTION_S = float(FLV_TIMESTAMP_LIMIT_S - 86400)


@dataclass(frozen=True, slots=True, kw_only=True)
class PushConfig:
    url: str
    redacted: str
    headers: StreamHeaders
    metadata: dict[str, str]
    backoff_start: float
    backoff_cap: float
    jitter: float
    max_retries: int | None
    max_queue_seconds: float
    connect_timeout: float
    #: checked again at every connect; the push goes to the checked address
    policy: NetPolicy = field(default_factory=lambda: NetPolicy(allow_private=True))
    #: PEM certificates trusted for rtmps on top of the system CA bundle
    ca_file: str | None = None
    #: media seconds one connection carries before it is renewed (see the module docstring)
    max_connection_s: float = MAX_CONNECTION_S


MSG_PACKETS, MSG_RESYNC, MSG_STOP = b"P", b"R", b"S"
_HEAD = struct.Struct("<BqqiIII")  # flags, pts, dts, duration, time base num/den, data length
_VIDEO, _KEY = 1, 2


def pack_packets(packets: Iterable[EncodedPacket]) -> bytes:
    """``packets`` as one ``P`` message: per packet a fixed header, then its data."""
    parts = [MSG_PACKETS]
    for p in packets:
        flags = (_VIDEO if p.kind == "video" else 0) | (_KEY if p.keyframe else 0)
        tb = p.time_base
        head = _HEAD.pack(
            flags, p.pts, p.dts, p.duration, tb.numerator, tb.denominator, len(p.data)
        )
        parts += (head, p.data)
    return b"".join(parts)


def unpack_packets(message: bytes) -> list[EncodedPacket]:
    """The packets of a ``P`` message made by ``pack_packets``, in order."""
    out: list[EncodedPacket] = []
    time_bases: dict[tuple[int, int], Fraction] = {}
    view, pos, end = memoryview(message), 1, len(message)
    while pos < end:
        flags, pts, dts, duration, num, den, size = _HEAD.unpack_from(view, pos)
        pos += _HEAD.size
        tb = time_bases.get((num, den))
        if tb is None:
            tb = time_bases[num, den] = Fraction(num, den)
        out.append(
            EncodedPacket(
                kind="video" if flags & _VIDEO else "audio",
                data=bytes(view[pos : pos + size]),
                pts=pts,
                dts=dts,
                time_base=tb,
                keyframe=bool(flags & _KEY),
                duration=duration,
            )
        )
        pos += size
    return out


def _seconds(packet: EncodedPacket) -> float:
    """Decode time in seconds, as a float: exact enough for a queue's span, and ~5x cheaper
    than the ``Fraction`` product (once per frame on each side of the pipe)."""
    tb = packet.time_base
    return packet.dts * tb.numerator / tb.denominator


def trim_gops(queue: deque[EncodedPacket], max_seconds: float) -> int:
    """Drop whole GOPs from the head while ``queue`` spans more than ``max_seconds``."""
    dropped = 0
    while len(queue) > 1:
        if _seconds(queue[-1]) - _seconds(queue[0]) <= max_seconds:
            break
        queue.popleft()
        dropped += 1
        while queue and not (queue[0].kind == "video" and queue[0].keyframe):
            queue.popleft()
            dropped += 1
    return dropped


def run_pusher(config: PushConfig, inbox: Connection, outbox: Connection) -> None:
    pusher = _Pusher(config, inbox, outbox)
    try:
        pusher.run()
    except BaseException as exc:  # report scrubbed: a traceback could show the stream key
        pusher.report_crash(exc)
        raise SystemExit(1) from None


def main(argv: list[str]) -> None:
    # Run as __main__, this module's classes are not the pickled ones: use the package's.
    from avatarcast.output import _rtmp_push

    set_os_thread_name("rtmp-push")
    inbox = Connection(int(argv[1]), writable=False)
    outbox = Connection(int(argv[2]), readable=False)
    config = inbox.recv()
    if not isinstance(config, _rtmp_push.PushConfig):
        raise SystemExit(2)
    _rtmp_push.run_pusher(config, inbox, outbox)


class _Pusher:
    def __init__(self, config: PushConfig, inbox: Connection, outbox: Connection) -> None:
        self.c = config
        self._inbox, self._outbox = inbox, outbox
        self._queue: deque[EncodedPacket] = deque()
        self._stop = False
        self._resync = False
        #: packets from a keyframe on that the next connection sends first (a renewal)
        self._carry: list[EncodedPacket] = []
        self._relay: subprocess.Popen[bytes] | None = None
        self._stats: dict[str, Any] = {
            "state": "connecting",
            "bytes_sent": 0,
            "packets_sent": 0,
            "dropped_packets": 0,
            "connects": 0,
            "failures": 0,
            "last_error": None,
        }

    def run(self) -> None:
        delay = self.c.backoff_start
        while not self._stop_requested():
            self._report(state="connecting")
            try:
                if self._push():  # renewed before its timestamps run out: connect at once
                    delay = self.c.backoff_start
                    continue
                break
            except DestinationRefused as exc:
                error = self._scrub(f"destination refused: {exc}")
                self._stats["failures"] += 1
                self._report(last_error=error, log=(logging.WARNING, error))
            except (av.FFmpegError, OSError) as exc:
                error = self._scrub(f"{type(exc).__name__}: {exc}")
                self._stats["failures"] += 1
                self._report(last_error=error, log=(logging.WARNING, error))
            self._close_relay()  # a failed attempt's TLS relay is of no further use
            if self._stop_requested():
                break
            if self.c.max_retries is not None and self._stats["failures"] > self.c.max_retries:
                self._report(state="failed", log=(logging.ERROR, "giving up"))
                return
            wait = delay * (1 + random.uniform(-self.c.jitter, self.c.jitter))
            self._report(state="retrying", log=(logging.INFO, f"reconnecting in {wait:.1f} s"))
            deadline = time.monotonic() + wait
            while not self._stop and (left := deadline - time.monotonic()) > 0:
                self._pump(left)  # what comes meanwhile queues (and trims) as it would live
            delay = min(delay * 2, self.c.backoff_cap)
        self._close_relay()
        self._report(state="closed")

    def _push(self) -> bool:
        """One connection, until stopped (False) or renewed at its timestamp limit (True)."""
        container = self._connect()
        streams = {s.type: s for s in container.streams}
        self._stats["connects"] += 1
        self._report(state="connected", log=(logging.INFO, "connected"))
        sent_keyframe, clean, last_report = False, False, 0
        origin: Fraction | None = None  # programme time at this connection's zero
        limit = Fraction(self.c.max_connection_s)
        try:
            while True:
                carried, self._carry = self._carry, []
                batch, resync = (carried, False) if carried else self._next()
                if not batch:
                    if self._stop_requested():
                        clean = True
                        return False
                    continue
                if resync:
                    sent_keyframe = False
                for i, packet in enumerate(batch):
                    key = packet.kind == "video" and packet.keyframe
                    if not sent_keyframe:
                        if not key:
                            continue
                        sent_keyframe = True
                    if origin is None or key:  # the time is needed only then
                        t = packet.dts * packet.time_base
                        if origin is None:  # programme time while it fits, else from here
                            origin = Fraction(0) if t < limit else t - CONNECTION_LEAD_S
                        elif t - origin >= limit:
                            self._carry = list(batch[i:])
                            clean = True
                            self._report(log=(logging.INFO, "renewing the connection"))
                            return True
                    container.mux(to_av_packet(packet, streams[packet.kind], offset=origin))
                    self._stats["bytes_sent"] += len(packet.data)
                    self._stats["packets_sent"] += 1
                if self._stats["packets_sent"] - last_report >= 25:
                    last_report = self._stats["packets_sent"]
                    self._report()
        finally:
            if clean:
                container.close()
            else:
                with contextlib.suppress(Exception):
                    container.close()
            self._close_relay()

    def _connect(self) -> OutputContainer:
        """Resolve and check the host now, then push to the checked address.

        Plain RTMP connects to that address itself; RTMPS goes through ``_tls_relay``, which
        holds the verified TLS connection (with the host name as SNI) to it. FFmpeg's tcUrl
        then names the address it was given, as in the usual stunnel set-ups for RTMPS ingest.
        """
        parts = urlsplit(self.c.url)
        tls = parts.scheme == "rtmps"
        port = parts.port or (443 if tls else 1935)
        try:
            target = self.c.policy.target(parts.hostname or "", port)
        except NetRefused as e:
            raise DestinationRefused(str(e)) from None
        self._close_relay()
        if tls:
            self._relay, netloc = _start_relay(target, self.c.ca_file, self.c.connect_timeout)
        else:
            # refused or unreachable: fail fast, before PyAV takes the GIL; FFmpeg then gets
            # the address that answered
            with target.connect(self.c.connect_timeout) as probe:
                netloc = url_netloc(probe.getpeername()[0], port)
        url = urlunsplit(("rtmp", netloc, parts.path, parts.query, ""))
        container = av.open(url, "w", format="flv")
        try:
            container.metadata.update({**self.c.headers.format.metadata, **self.c.metadata})
            add_streams(container, self.c.headers)
            container.start_encoding()  # connects; sends the header and onMetaData
        except BaseException:
            with contextlib.suppress(Exception):
                container.close()
            raise
        return container

    def _close_relay(self) -> None:
        relay, self._relay = self._relay, None
        if relay is not None and relay.poll() is None:
            relay.kill()
        if relay is not None:
            relay.wait()
            for pipe in (relay.stdin, relay.stdout):
                if pipe is not None:
                    pipe.close()

    def _pump(self, timeout: float) -> None:
        """Take the messages waiting on the pipe, waiting up to ``timeout`` for the first.

        The pipe is read by this thread between muxes: a second thread to read it cost a
        wake-up per frame and bought nothing, as PyAV holds the GIL while it connects and
        writes. While this thread is stuck the pipe fills and the parent's queue drops GOPs.
        """
        inbox = self._inbox
        while not self._stop and inbox.poll(timeout):
            timeout = 0.0
            try:
                msg = inbox.recv_bytes()
            except (EOFError, OSError):
                msg = MSG_STOP
            tag = msg[:1]
            if tag == MSG_PACKETS:
                self._queue.extend(unpack_packets(msg))
                dropped = trim_gops(self._queue, self.c.max_queue_seconds)
                if dropped:
                    self._resync = True
                    self._report(dropped_packets=self._stats["dropped_packets"] + dropped)
            elif tag == MSG_RESYNC:
                self._resync = True
            elif tag == MSG_STOP:
                self._stop = True

    def _next(self) -> tuple[list[EncodedPacket], bool]:
        """Every packet queued so far (waiting up to a second for one), and a pending resync."""
        self._pump(0.0 if self._queue else 1.0)
        resync, self._resync = self._resync, False
        batch = list(self._queue)
        self._queue.clear()
        return batch, resync

    def _stop_requested(self) -> bool:
        return self._stop

    def _report(self, **changes: Any) -> None:
        log = changes.pop("log", None)
        with contextlib.suppress(OSError, ValueError):
            self._stats.update(changes)
            self._outbox.send({**self._stats, "log": log})

    def report_crash(self, exc: BaseException) -> None:
        error = self._scrub(f"push process crashed: {type(exc).__name__}: {exc}")
        self._report(state="failed", last_error=error, log=(logging.ERROR, error))

    def _scrub(self, text: str) -> str:
        text = text.replace(self.c.url, self.c.redacted)
        key = self.c.url.rstrip("/").rsplit("/", 1)[-1]
        return text.replace(key, "****") if key else text


def _start_relay(
    target: Target, ca_file: str | None, timeout: float
) -> tuple[subprocess.Popen[bytes], str]:
    """A ``_tls_relay`` process with a verified TLS connection to ``target``, and the loopback
    ``host:port`` where it waits for FFmpeg's plain RTMP."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        netloc = f"127.0.0.1:{listener.getsockname()[1]}"
        relay = subprocess.Popen(
            [sys.executable, "-m", "avatarcast.output._tls_relay", str(listener.fileno())],
            pass_fds=(listener.fileno(),),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
    finally:
        listener.close()  # the relay holds its own copy
    assert relay.stdin is not None and relay.stdout is not None
    config = {
        "host": target.host,
        "addresses": list(target.addresses),
        "port": target.port,
        "ca_file": ca_file,
        "timeout": timeout,
    }
    relay.stdin.write(json.dumps(config).encode() + b"\n")
    relay.stdin.flush()
    ready, _, _ = select.select([relay.stdout], [], [], timeout + 10)
    line = relay.stdout.readline() if ready else b""
    try:
        answer = json.loads(line or b"{}")
    except ValueError:
        answer = {}
    if answer.get("ok") is True:
        return relay, netloc
    relay.kill()
    relay.wait()
    relay.stdin.close()
    relay.stdout.close()
    error = str(answer.get("error") or "the TLS relay did not answer")
    shown = f"rtmps://{target.host}:{target.port}"
    if answer.get("kind") == "connect":
        raise OSError(f"cannot connect to {shown}: {error}")
    raise DestinationRefused(f"{shown}: {error}")


if __name__ == "__main__":
    main(sys.argv)
