"""Platform chat through one ``avatarcast serve``: ingestion rate and written-answer latency.

1. Ingestion: signed webhook posts of ``--batch`` messages (a mix of questions, greetings,
   spam and abuse, each with its own platform id) as fast as one client sends them; the rate
   counts messages until every one has a fate (``pending`` 0 in ``/chat-account``), so
   moderation, classification and fate recording are inside the figure.
2. Latency: ``--qps`` questions a second for ``--seconds`` through the same webhook, each
   from its own viewer; written answers go to a local reply callback; the intake's
   ``written_p95_s`` (message in -> answer line sent) and the callback's arrival times give
   the p95.
3. IRC: a Twitch-like TLS server in this script sends ``--messages`` tagged PRIVMSG lines to
   a ``twitch`` source as fast as the socket takes them; the rate counts until every fate.

``--live`` feeds part 1 into a stream on air and reports its frames and late frames (more than
a frame period behind the wall clock, the stream's own count) during parts 1 and 3.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/chat_sources_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import ssl
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from procstat import cpu_seconds, loadavg  # noqa: E402

from irc_server import make_ca  # noqa: E402
from served import live_stream, serve, shop_catalog  # noqa: E402

SECRET = "bench-secret-0123456789"
TEXTS = [
    "How much does the Kovana airfryer cost?",
    "Is the Lumetra monitor in stock?",
    "hello everyone",
    "Hoeveel kost de Orbilux projector?",
    "BUY FOLLOWERS AT spam.example",
    "nice stream",
    "What brand is the Lumetra monitor?",
    "wat kost de airfryer",
]


def _signed(body: bytes) -> dict[str, str]:
    stamp = f"{time.time():.6f}"
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-avatarcast-timestamp": stamp,
        "x-avatarcast-signature": f"sha256={mac}",
    }


class _Replies(BaseHTTPRequestHandler):
    count = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).count += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--qps", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument(
        "--live", action="store_true", help="ingest into a stream on air; report its frame rate"
    )
    args = parser.parse_args()
    replies = ThreadingHTTPServer(("127.0.0.1", 0), _Replies)
    threading.Thread(target=replies.serve_forever, daemon=True).start()
    reply_url = f"http://127.0.0.1:{replies.server_address[1]}/r"
    with tempfile.TemporaryDirectory() as tmp:
        tls = make_ca(Path(tmp) / "tls")  # the IRC part's private CA, in the server's ca_dir
        env = {
            "AVATARCAST_CHAT_SOURCES__MAX_AGE_S": "60",
            "AVATARCAST_CHAT_SOURCES__CA_DIR": str(tls[0].parent),
        }
        _run(Path(tmp), env, args, reply_url, tls)


def _run(
    tmp: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    reply_url: str,
    tls: tuple[Path, Path, Path],
) -> None:
    load_before = loadavg()
    with serve(tmp / "serve", env) as s:
        c, op = s.client(), s.auth("operator")
        for product in shop_catalog()[:3]:
            c.post("/v1/products", json=product, headers=op)
        pid = s.proc.pid
        live = live_stream(c, op)[0] if args.live else None
        before = _frames(c, op, live, 5.0) if live else None
        cpu0 = cpu_seconds(pid)
        late0 = _late(c, op, live)
        ingest = _ingest(c, op, args, reply_url, live)
        cpu1 = cpu_seconds(pid)
        late1 = _late(c, op, live)
        ingest["server_cpu_s"] = round(cpu1 - cpu0, 2)
        ingest["messages_per_server_cpu_s"] = round(ingest["messages"] / (cpu1 - cpu0))
        if live:
            ingest["frames_per_s_before"] = before
            ingest["live_late_frames_during"] = _delta(late0, late1)
        print(json.dumps({"ingest": ingest}), flush=True)  # kept should a later part fail
        cpu1 = cpu_seconds(pid)
        irc = _irc(c, op, args, tls)
        irc["server_cpu_s"] = round(cpu_seconds(pid) - cpu1, 2)
        if live:
            irc["live_late_frames_during"] = _delta(late1, _late(c, op, live))
        irc["messages_per_server_cpu_s"] = round(irc["messages"] / irc["server_cpu_s"])
        results = {
            "cores": os.cpu_count(),
            "irc": irc,
            "loadavg_before": load_before,
            "ingest": ingest,
            "latency": _latency(c, op, args, reply_url),
            "loadavg_after": loadavg(),
        }
    print(json.dumps(results, indent=2))


def _frames(c: Any, op: dict[str, str], sid: str, seconds: float) -> float:
    """Frames the stream made per wall second over ``seconds`` (its status' frame count)."""
    f0, t0 = c.get(f"/v1/streams/{sid}", headers=op).json()["status"]["frames"], time.time()
    time.sleep(seconds)
    f1, t1 = c.get(f"/v1/streams/{sid}", headers=op).json()["status"]["frames"], time.time()
    return round((f1 - f0) / (t1 - t0), 2)


def _late(c: Any, op: dict[str, str], sid: str | None) -> tuple[int, int] | None:
    """``(frames, late frames)`` of the stream on air so far (None without ``--live``)."""
    if sid is None:
        return None
    status = c.get(f"/v1/streams/{sid}", headers=op).json()["status"]
    return int(status.get("frames") or 0), int(status.get("late_frames") or 0)


def _delta(a: tuple[int, int] | None, b: tuple[int, int] | None) -> dict[str, int] | None:
    """Frames made and frames late (more than a frame period behind) between two reads."""
    if a is None or b is None:
        return None
    return {"frames": b[0] - a[0], "late": b[1] - a[1]}


def _source(
    c: Any, op: dict[str, str], name: str, reply_url: str, sid: str | None = None
) -> tuple[str, str]:
    if sid is None:
        sid = c.post("/v1/streams", json={"name": name}, headers=op).json()["id"]
    body = {"kind": "webhook", "token": SECRET, "reply_url": reply_url, "rate_per_30s": 10_000}
    url = c.post(f"/v1/streams/{sid}/chat-sources", json=body, headers=op).json()["url"]
    return sid, url


def _ingest(
    c: Any, op: dict[str, str], args: argparse.Namespace, reply_url: str, live: str | None
) -> dict[str, Any]:
    sid, url = _source(c, op, "ingest", reply_url, live)
    f0 = c.get(f"/v1/streams/{sid}", headers=op).json()["status"].get("frames")
    bodies = []
    for b in range(args.messages // args.batch):
        msgs = [
            {
                "id": f"m{b}-{i}",
                "viewer_id": f"u{(b * args.batch + i) % 20000}",
                "name": f"viewer{i}",
                "text": f"{TEXTS[(b + i) % len(TEXTS)]} {b}.{i}",
            }
            for i in range(args.batch)
        ]
        bodies.append(json.dumps({"messages": msgs}).encode())
    start = time.perf_counter()
    for body in bodies:
        r = c.post(url, content=body, headers=_signed(body))
        assert r.status_code == 202, r.text
    posted = time.perf_counter() - start
    while True:
        account = c.get(f"/v1/streams/{sid}/chat-account", headers=op).json()
        if account["pending"] == 0 and account["queued"] == 0:
            break
        time.sleep(0.05)
    total = time.perf_counter() - start
    n = account["messages_in"]
    f1 = c.get(f"/v1/streams/{sid}", headers=op).json()["status"].get("frames")
    during = None if f0 is None or f1 is None else round((f1 - f0) / total, 2)
    return {
        "frames_per_s_during": during,
        "messages": n,
        "posted_s": round(posted, 2),
        "all_fates_s": round(total, 2),
        "messages_per_s": round(n / total),
        "classified_per_s": round((n - account["overflow"]) / total),
        "overflow_reasons": account["reasons"].get("overflow", {}),
        "balanced": account["balanced"],
        "account": {
            k: account[k]
            for k in (
                "answered_written",
                "merged",
                "blocked",
                "overflow",
                "ignored",
                "answered_spoken",
            )
        },
    }


def _irc(
    c: Any, op: dict[str, str], args: argparse.Namespace, tls: tuple[Path, Path, Path]
) -> dict[str, Any]:
    """A Twitch-like IRC server over TLS that, once the bot has joined, sends ``--messages``
    tagged PRIVMSG lines as fast as the socket takes them (a busy channel's firehose)."""
    ca, cert, key = tls
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    ready: dict[str, Any] = {}

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while b"JOIN" not in (line := await reader.readline()):
            if line.startswith(b"NICK"):
                writer.write(b":tmi 001 bot :Welcome\r\n")
            if not line:
                return
        writer.write(b":bot!bot@tmi JOIN #shop\r\n")
        ready["start"], ready["writer"] = time.perf_counter(), writer
        for n in range(args.messages):
            text = f"{TEXTS[n % len(TEXTS)]} {n}"
            writer.write(
                f"@id=irc-{n};user-id={n % 20000};display-name=v{n % 20000} "
                f":v{n}!v@tmi PRIVMSG #shop :{text}\r\n".encode()
            )
            if n % 1000 == 0:
                await writer.drain()
        await writer.drain()
        ready["sent"] = time.perf_counter()
        await reader.read()

    async def run() -> dict[str, Any]:
        server = await asyncio.start_server(client, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        sid = c.post("/v1/streams", json={"name": "irc"}, headers=op).json()["id"]
        body = {
            "kind": "twitch",
            "server": f"ircs://127.0.0.1:{port}",
            "channel": "#shop",
            "username": "bot",
            "ca_file": ca.name,
            "rate_per_30s": 100,
        }
        url = f"/v1/streams/{sid}/chat-sources"
        r = await asyncio.to_thread(c.post, url, json=body, headers=op)
        assert r.status_code == 201, r.text
        async with server:
            while True:
                account = (
                    await asyncio.to_thread(c.get, f"/v1/streams/{sid}/chat-account", headers=op)
                ).json()
                if account["messages_in"] >= args.messages and account["pending"] == 0:
                    break
                await asyncio.sleep(0.05)
            ready["writer"].close()  # the bot's read ends, and with it the client task
            await asyncio.sleep(0.2)
        total = time.perf_counter() - ready["start"]
        return {
            "messages": account["messages_in"],
            "server_sent_s": round(ready["sent"] - ready["start"], 2),
            "all_fates_s": round(total, 2),
            "messages_per_s": round(account["messages_in"] / total),
            "classified_per_s": round((account["messages_in"] - account["overflow"]) / total),
            "overflow_reasons": account["reasons"].get("overflow", {}),
            "balanced": account["balanced"],
        }

    return asyncio.run(run())


def _latency(c: Any, op: dict[str, str], args: argparse.Namespace, reply_url: str) -> Any:
    sid, url = _source(c, op, "latency", reply_url)
    questions = [t for t in TEXTS if "?" in t or t.startswith("wat")]
    start = time.perf_counter()
    sent = 0
    for tick in range(args.seconds * 10):
        due = start + tick / 10
        while time.perf_counter() < due:
            time.sleep(0.001)
        msgs = [
            {
                "id": f"q{sent + i}",
                "viewer_id": f"w{sent + i}",
                "name": f"w{sent + i}",
                "text": questions[(sent + i) % len(questions)],
            }
            for i in range(args.qps // 10)
        ]
        sent += len(msgs)
        body = json.dumps({"messages": msgs}).encode()
        c.post(url, content=body, headers=_signed(body))
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        account = c.get(f"/v1/streams/{sid}/chat-account", headers=op).json()
        if account["pending"] == 0:
            break
        time.sleep(0.1)
    return {
        "questions": sent,
        "offered_qps": round(sent / (time.perf_counter() - start), 1),
        "written_p95_s": account["written_p95_s"],
        "written_lines_sent": account["written_lines_sent"],
        "answered_written": account["answered_written"],
        "merged": account["merged"],
        "overflow": account["overflow"],
        "balanced": account["balanced"],
    }


if __name__ == "__main__":
    main()
