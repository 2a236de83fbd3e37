"""HLS origin: a stream's playlist and segments under its path, the embeddable player, hls.js.

The worker writes the files (``output/hls.py``); these routes only read them, so a CDN in front
fetches each file once. A playlist may be cached ``hls.playlist_max_age_s`` (1 s), a segment or
part a day (``immutable``: names carry the run and never repeat), a 404 not at all (the next
part is about to appear). A blocking playlist request (``_HLS_msn``, ``_HLS_part``: LL-HLS)
waits until the playlist holds that part, at most three target durations.

Access: the stream's viewer token or a signed short-lived one (``POST .../viewer-tokens``), as
``?token=`` or a bearer token (the playlist is rewritten so its segment URLs carry the token
given) or, with ``hls.public``, anyone. Pages on the origins in
``hls.cors_origins`` may fetch the files (CORS) and frame the player.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path as FsPath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from sqlalchemy import select

from avatarcast.catalog.model import localize
from avatarcast.control.context import AppContext
from avatarcast.control.deps import ContextDep
from avatarcast.control.embed import embed_html
from avatarcast.control.manager import hls_folder
from avatarcast.control.problems import ProblemError, problem_responses
from avatarcast.control.schemas.streams import HlsConfigIn
from avatarcast.control.streaming import health_of
from avatarcast.control.viewer_tokens import viewer_token_valid
from avatarcast.db.models import ProductRow
from avatarcast.db.models_streams import StreamRow
from avatarcast.output.hls_playlist import playlist_has

__all__ = ["HLS_JS_SHA256", "HLS_JS_VERSION", "hls_js_path", "hls_public", "router"]

router = APIRouter(prefix="/v1", tags=["playback"])
HLS_JS_VERSION = "1.7.4"
#: sha256 of ``hls.min.js`` from ``npm pack hls.js@1.7.4`` (see its SOURCE.md)
HLS_JS_SHA256 = "cfc70cc9e9fc63d071919e087670abc760c8fd1bc889b88588026e4d22193bbe"
HLS_JS_URL = f"/v1/static/hls.js/{HLS_JS_VERSION}/hls.min.js"
StreamIdPath = Annotated[str, Path(max_length=64)]
FileName = Annotated[
    str, Path(max_length=96, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[0-9]+)?\.(m3u8|ts)$")
]
TokenQuery = Annotated[
    str | None, Query(max_length=128, description="The stream's viewer token (whep_token)")
]
_IMMUTABLE = "max-age=86400, immutable"
_ACCESS_TTL_S = 1.0
_URI_LINE = re.compile(r"^(?!#)(\S+)$", re.M)
_URI_ATTR = re.compile(r'URI="([^"?]+)"')
_PLAYLIST = "application/vnd.apple.mpegurl"


def hls_js_path() -> FsPath:
    return FsPath(str(files("avatarcast.control") / "static" / f"hls.js-{HLS_JS_VERSION}")) / (
        "hls.min.js"
    )


def hls_public(row: StreamRow) -> dict[str, Any]:
    """The HLS fields of a stream's public view."""
    if not row.hls or not row.hls.get("enabled"):
        return {"hls": HlsConfigIn.model_validate(row.hls) if row.hls else None}
    base = f"/v1/streams/{row.id}"
    return {
        "hls": HlsConfigIn.model_validate(row.hls),
        "hls_url": f"{base}/hls/index.m3u8",
        "embed_url": f"{base}/embed",
    }


@dataclass(frozen=True, slots=True)
class _Access:
    tenant_id: str
    token: str
    public: bool
    low_latency: bool
    lang: str
    checked: float


def _load(ctx: AppContext, stream_id: str) -> _Access | None:
    with ctx.sessions() as session:
        row = session.get(StreamRow, stream_id)
        if row is None or not row.hls or not row.hls.get("enabled"):
            return None
        return _Access(
            tenant_id=row.tenant_id,
            token=row.whep_token,
            public=bool(row.hls.get("public")),
            low_latency=bool(row.hls.get("low_latency")),
            lang=row.lang,
            checked=time.monotonic(),
        )


async def _access(
    ctx: AppContext, request: Request, stream_id: str, token: str | None
) -> tuple[_Access, str]:
    """The stream's HLS access, read at most once a second per stream (every viewer polls),
    and the viewer token the caller gave ("" for a public stream): the stream's own or a signed
    one not yet expired (``control.viewer_tokens``); URLs handed back carry that one, never the
    stream's own token in its place."""
    cache: dict[str, _Access] = ctx.extras.setdefault("hls_access", {})
    access = cache.get(stream_id)
    if access is None or time.monotonic() - access.checked > _ACCESS_TTL_S:
        found = await asyncio.to_thread(_load, ctx, stream_id)
        if found is None:
            cache.pop(stream_id, None)
            raise ProblemError(
                404,
                f"no stream {stream_id!r} with HLS",
                kind="not-found",
                headers=_cors(ctx, request),
            )
        cache[stream_id] = access = found
    if access.public:
        return access, ""
    given = _viewer_token(request, token)
    if given is None or not viewer_token_valid(
        given, stream_token=access.token, stream_id=stream_id
    ):
        raise ProblemError(
            401,
            "send the stream's viewer token as ?token= or a bearer token",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="hls"', **_cors(ctx, request)},
        )
    return access, given


def _viewer_token(request: Request, token: str | None) -> str | None:
    if token:
        return token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _cors(ctx: AppContext, request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    allowed = ctx.settings.hls.cors_origins
    if origin is None or not allowed:
        return {"Vary": "Origin"}
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*"}
    if origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"}


def _not_found(ctx: AppContext, request: Request, name: str) -> ProblemError:
    return ProblemError(
        404,
        f"no HLS file {name!r} (yet)",
        kind="not-found",
        headers={"Cache-Control": "no-store", **_cors(ctx, request)},
    )


@router.get(
    "/streams/{stream_id}/hls/{name}",
    response_class=Response,
    responses={
        200: {
            "description": "The playlist (application/vnd.apple.mpegurl) or a segment (video/mp2t)",
            "content": {_PLAYLIST: {"schema": {"type": "string"}}, "video/mp2t": {"schema": {}}},
        },
        **problem_responses(401, 404, 422),
    },
)
async def hls_file(
    stream_id: StreamIdPath,
    name: FileName,
    request: Request,
    ctx: ContextDep,
    token: TokenQuery = None,
    msn: Annotated[int | None, Query(alias="_HLS_msn", ge=0, le=2**40)] = None,
    part: Annotated[int | None, Query(alias="_HLS_part", ge=0, le=10_000)] = None,
) -> Response:
    """A stream's HLS file, for a player or a CDN (no API key: see the module's text)."""
    access, given = await _access(ctx, request, stream_id, token)
    folder = hls_folder(ctx.settings.hls.dir.resolve(), access.tenant_id, stream_id)
    path = folder / name
    cors = _cors(ctx, request)
    scope = "public" if access.public else "private"
    if name.endswith(".ts"):
        if not path.is_file():
            raise _not_found(ctx, request, name)
        return FileResponse(
            path,
            media_type="video/mp2t",
            headers={"Cache-Control": f"{scope}, {_IMMUTABLE}", **cors},
        )
    text = await _playlist(path, msn, part)
    if text is None:
        raise _not_found(ctx, request, name)
    if not access.public:
        text = _with_token(text, given)
    max_age = ctx.settings.hls.playlist_max_age_s
    if msn is not None or "#EXT-X-ENDLIST" in text:
        max_age = 60  # the answer to a blocking request, or an ended playlist, never changes
    headers = {"Cache-Control": f"{scope}, max-age={max_age}", **cors}
    return Response(text, media_type=_PLAYLIST, headers=headers)


@router.options("/streams/{stream_id}/hls/{name}", include_in_schema=False)
async def hls_preflight(
    stream_id: StreamIdPath, name: str, request: Request, ctx: ContextDep
) -> Response:
    headers = {
        **_cors(ctx, request),
        "Access-Control-Allow-Methods": "GET, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Range",
        "Access-Control-Max-Age": "600",
    }
    return Response(status_code=204, headers=headers)


async def _playlist(path: FsPath, msn: int | None, part: int | None) -> str | None:
    """The playlist now, or once it holds ``msn``/``part`` (at most 3 target durations)."""
    text = _read(path)
    if msn is None or text is None:
        return text
    target = _target(text)
    deadline = time.monotonic() + 3 * target
    seen = _mtime(path)
    while not playlist_has(text, msn, part) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        now = _mtime(path)
        if now != seen:
            seen = now
            text = _read(path) or text
    return text


def _read(path: FsPath) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _mtime(path: FsPath) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _target(text: str) -> float:
    m = re.search(r"^#EXT-X-TARGETDURATION:(\d+)", text, re.M)
    return float(m.group(1)) if m else 2.0


def _with_token(text: str, token: str) -> str:
    """Segment and part URLs that carry the viewer token, for players that cannot add it."""
    q = "?token=" + quote(token, safe="")
    text = _URI_LINE.sub(lambda m: m.group(1) + q, text)
    return _URI_ATTR.sub(lambda m: f'URI="{m.group(1)}{q}"', text)


@router.get(
    "/streams/{stream_id}/embed",
    response_class=Response,
    responses={
        200: {"description": "An embeddable HLS player page", "content": {"text/html": {}}},
        **problem_responses(401, 404, 422),
    },
)
async def embed(
    stream_id: StreamIdPath,
    request: Request,
    ctx: ContextDep,
    token: TokenQuery = None,
    ll: Annotated[
        bool, Query(description="Play LL-HLS parts (hls.js stalls on them at times)")
    ] = False,
) -> Response:
    """The player page for a shop's iframe (``?token=`` unless the stream's HLS is public).

    The page plays a low-latency stream as plain HLS (whole segments) unless ``?ll=1``:
    hls.js 1.7.4 stalls at times on our TS parts (docs/hls.md)."""
    access, given = await _access(ctx, request, stream_id, token)
    q = "" if access.public else "?token=" + quote(given, safe="")
    base = f"/v1/streams/{stream_id}"
    page = embed_html(
        {
            "src": f"{base}/hls/index.m3u8{q}",
            "onAir": f"{base}/on-air{q}",
            "hlsJs": HLS_JS_URL,
            "lowLatency": access.low_latency and ll,
        }
    )
    origins = ctx.settings.hls.cors_origins
    ancestors = " ".join(origins) if origins and "*" not in origins else "*"
    headers = {
        "Content-Security-Policy": f"frame-ancestors {ancestors}",
        "Cache-Control": "private, max-age=60",
        "Referrer-Policy": "no-referrer",
    }
    return HTMLResponse(page, headers=headers)


@router.get("/streams/{stream_id}/on-air", responses=problem_responses(401, 404, 422))
async def on_air(
    stream_id: StreamIdPath, request: Request, ctx: ContextDep, token: TokenQuery = None
) -> Response:
    """The product on air, for the link under the player: ``{id, title, url}`` or nulls."""
    access, _ = await _access(ctx, request, stream_id, token)
    product_id = health_of(ctx, stream_id).product_id
    body: dict[str, str | None] = {"id": product_id, "title": None, "url": None}
    if product_id is not None:
        payload = await asyncio.to_thread(_product, ctx, access.tenant_id, product_id)
        if payload is not None:
            body["title"] = localize(payload.get("title", ""), access.lang)
            body["url"] = payload.get("url")
    headers = {"Cache-Control": "no-store", **_cors(ctx, request)}
    return JSONResponse(body, headers=headers)


def _product(ctx: AppContext, tenant_id: str, product_id: str) -> dict[str, Any] | None:
    with ctx.sessions() as session:
        row = session.scalar(
            select(ProductRow).where(
                ProductRow.tenant_id == tenant_id, ProductRow.product_id == product_id
            )
        )
        return dict(row.payload) if row is not None else None


@router.get("/static/hls.js/{version}/hls.min.js", include_in_schema=False)
async def hls_js(
    version: Annotated[str, Path(max_length=16)], request: Request, ctx: ContextDep
) -> Response:
    if version != HLS_JS_VERSION:
        raise ProblemError(404, f"hls.js {version} is not served here", kind="not-found")
    headers = {"Cache-Control": f"public, {_IMMUTABLE}", "Access-Control-Allow-Origin": "*"}
    return FileResponse(hls_js_path(), media_type="text/javascript", headers=headers)
