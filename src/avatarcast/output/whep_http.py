"""The WHEP HTTP resource (RFC 9725) for a WhepSink, plus a one-page browser player.

``POST <path>`` with an SDP offer answers ``201 Created`` once ICE gathering is complete (no
trickle ICE, so ``PATCH`` is 405); ``DELETE <path>/<id>`` ends the session. A refused request
never touches the stream: errors only ever concern the one viewer that asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from avatarcast.errors import OutputError
from avatarcast.output.whep import BadOfferError, IceServer, ViewerLimitError, WhepSink

__all__ = ["WhepServer", "player_html", "serve_whep", "whep_app"]

MAX_OFFER_BYTES = 64 * 1024


def whep_app(sink: WhepSink, *, path: str = "/whep", token: str | None = None) -> Starlette:
    """An ASGI app serving ``sink`` at ``path``; ``token`` requires ``Authorization: Bearer``."""
    path = "/" + path.strip("/")

    def unauthorized(request: Request) -> Response | None:
        if token is None:
            return None
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(value.strip(), token):
            return None
        return _problem(401, "Unauthorized", "a valid bearer token is required", bearer=True)

    async def offer(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Accept-Post": "application/sdp"})
        if (refused := unauthorized(request)) is not None:
            return refused
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/sdp":
            return _problem(
                415,
                "Unsupported Media Type",
                f"the offer must be sent as application/sdp, not {content_type or 'nothing'!r}",
                headers={"Accept-Post": "application/sdp"},
            )
        body = await request.body()
        if len(body) > MAX_OFFER_BYTES:
            return _problem(413, "Offer Too Large", f"offers are limited to {MAX_OFFER_BYTES} B")
        try:
            session = await sink.connect(body.decode("utf-8"))
        except UnicodeDecodeError:
            return _problem(400, "Bad Offer", "the SDP offer is not UTF-8 text")
        except BadOfferError as exc:
            return _problem(400, "Bad Offer", exc.message)
        except ViewerLimitError as exc:
            return _problem(503, "Viewer Limit", exc.message, headers={"Retry-After": "10"})
        except OutputError as exc:
            return _problem(503, "Unavailable", exc.message, headers={"Retry-After": "2"})
        headers = {"Location": f"{path}/{session.id}"}
        links = [_ice_link(server) for server in sink.ice_servers]
        if links:
            headers["Link"] = ", ".join(links)
        return Response(
            session.answer_sdp, status_code=201, media_type="application/sdp", headers=headers
        )

    async def session(request: Request) -> Response:
        if (refused := unauthorized(request)) is not None:
            return refused
        session_id = request.path_params["session_id"]
        if await sink.disconnect(session_id):
            return Response(status_code=200)
        return _problem(404, "Not Found", f"no WHEP session {session_id!r}")

    async def player(request: Request) -> Response:
        return HTMLResponse(player_html(path))

    return Starlette(
        routes=[
            Route("/", player, methods=["GET"]),
            Route(path, offer, methods=["POST", "OPTIONS"]),
            Route(f"{path}/player", player, methods=["GET"]),
            Route(path + "/{session_id}", session, methods=["DELETE"]),
        ]
    )


@dataclass(slots=True, kw_only=True)
class WhepServer:
    """A running uvicorn server for a WHEP app; owns the task that runs it."""

    url: str
    port: int
    _server: _EmbeddedServer
    _task: asyncio.Task[None]

    async def aclose(self) -> None:
        self._server.exit()
        await self._task


async def serve_whep(
    sink: WhepSink,
    host: str = "127.0.0.1",
    port: int = 8889,
    *,
    path: str = "/whep",
    token: str | None = None,
) -> WhepServer:
    """Serve ``sink`` over HTTP on this event loop; returns once it is listening.

    The socket is bound here, before uvicorn starts, so a busy port is an OutputError now
    rather than a log line and an exit from inside uvicorn. ``port=0`` picks a free port.
    """
    sock = _bind(host, port)
    config = uvicorn.Config(
        whep_app(sink, path=path, token=token),
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    server = _EmbeddedServer(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has only a flag
        await asyncio.sleep(0.01)
    if task.done():
        sock.close()
        exc = task.exception()
        raise OutputError(f"WHEP server on {host}:{port} did not start: {exc!r}")
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return WhepServer(
        url=f"http://{shown}:{bound_port}", port=bound_port, _server=server, _task=task
    )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers (the application owns SIGINT/SIGTERM) and without
    its ten wake-ups a second to look at ``should_exit``: those cost an idle WHEP child
    ~0.0013 CPU s per second, as much as the rest of it with no viewer."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()

    def exit(self) -> None:
        self.should_exit = True
        self._exit.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        """uvicorn's, ticking once a second (its Date header) or as soon as told to exit."""
        while not await self.on_tick(0):  # 0: every tick refreshes the Date header
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise OutputError(f"cannot resolve WHEP host {host!r}: {exc}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else str(exc)
        raise OutputError(
            f"cannot serve WHEP on {host}:{port}: {why}", retryable=exc.errno == errno.EADDRINUSE
        ) from exc
    sock.setblocking(False)
    return sock


def _problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    bearer: bool = False,
) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    all_headers = dict(headers or {})
    if bearer:
        all_headers["WWW-Authenticate"] = 'Bearer realm="whep"'
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers=all_headers,
    )


def _ice_link(server: IceServer) -> str:
    parts = []
    for url in server.urls:
        link = f'<{url}>; rel="ice-server"'
        if server.username is not None and server.credential is not None:
            link += (
                f'; username="{server.username}"; credential="{server.credential}"'
                '; credential-type="password"'
            )
        parts.append(link)
    return ", ".join(parts)


def player_html(whep_path: str) -> str:
    """The one-page browser player, posting its offer to ``whep_path``."""
    return _PLAYER_HTML.replace("__WHEP_PATH__", json.dumps(whep_path))


_PLAYER_HTML = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>avatarcast live</title>
<style>
  body { margin: 0; background: #000; }
  video { width: 100vw; height: 100vh; object-fit: contain; }
  #status { position: fixed; top: 8px; left: 8px; color: #ccc; font: 14px sans-serif; }
</style>
<video id="video" autoplay muted playsinline controls></video>
<div id="status">connecting…</div>
<script>
(async () => {
  const endpoint = __WHEP_PATH__;
  const token = new URLSearchParams(location.search).get("token");
  const status = document.getElementById("status");
  const video = document.getElementById("video");
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.pc = pc;
  const stream = new MediaStream();
  video.srcObject = stream;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (event) => stream.addTrack(event.track);
  pc.onconnectionstatechange = () => { status.textContent = pc.connectionState; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, 2000);
  });
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(endpoint, {
    method: "POST", headers, body: pc.localDescription.sdp,
  });
  if (response.status !== 201) {
    status.textContent = "WHEP " + response.status + ": " + await response.text();
    return;
  }
  window.whepSession = new URL(response.headers.get("Location"), location.href).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  addEventListener("pagehide", () => {
    fetch(window.whepSession, { method: "DELETE", headers, keepalive: true });
  });
})().catch((error) => {
  document.getElementById("status").textContent = "error: " + error;
});
</script>
</html>
"""
