"""Product images through the API: a per-tenant asset store, never a path on the server.

A tenant's product ``image`` was a file path the server opened: ``/etc/passwd`` or
``../../other-tenant/...`` (OWASP API1/API8:2023). Through the API an image is now either
uploaded (``POST /v1/products/{id}/image``) or an ``https://`` URL the server fetches once,
under the SSRF rules of ``avatarcast.netpolicy`` (checked address, SNI kept, no redirects) and
with size and time limits. Either way the bytes must decode with Pillow as PNG, JPEG or WebP
within the pixel limit; what is stored is the decoded picture re-encoded as PNG (nothing of
the original file survives but its pixels), named by its SHA-256 under the tenant's folder.
The product then says ``image: "asset:<sha256>"``. Catalog files given to the CLI keep local
paths: those are the operator's own files.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

from avatarcast.netpolicy import NetPolicy, NetRefused, Target, client_context
from avatarcast.settings import Settings

__all__ = ["ASSET_REF", "ImageRejected", "ImageStore"]

ASSET_REF = re.compile(r"^asset:([0-9a-f]{64})$")
FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


class ImageRejected(ValueError):
    """An image the server will not store; the message says why, safe to show."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageStore:
    root: Path
    max_bytes: int
    max_pixels: int
    fetch_timeout_s: float
    policy: NetPolicy
    ca_file: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageStore:
        images, ca = settings.images, settings.tls.ca_file
        return cls(
            root=images.dir.resolve(),
            max_bytes=images.max_bytes,
            max_pixels=images.max_pixels,
            fetch_timeout_s=images.fetch_timeout_s,
            policy=settings.api.net_policy(),
            ca_file=str(ca) if ca else None,
        )

    def local_image(self, tenant_id: str, image: str | None) -> str | None:
        """For a stream worker: the file of a stored asset; anything else (a path stored before
        images went through this store, an URL) is never opened on the server."""
        if image is None or not ASSET_REF.match(image):
            return None
        path = self.path(tenant_id, image)
        return str(path) if path is not None else None

    # --- storing ------------------------------------------------------------------------------

    def save(self, tenant_id: str, data: bytes) -> str:
        """Check ``data`` by decoding it, store it as PNG; its ``asset:`` reference."""
        png = normalised_png(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        digest = hashlib.sha256(png).hexdigest()
        folder = self._folder(tenant_id)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{digest}.png"
        if not path.exists():
            tmp = folder / f".{digest}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(png)
            tmp.replace(path)  # whole or absent: never a half-written image
        return f"asset:{digest}"

    def path(self, tenant_id: str, ref: str) -> Path | None:
        """The stored file of ``ref`` in this tenant's store, if it is there."""
        found = ASSET_REF.match(ref)
        if found is None:
            return None
        path = self._folder(tenant_id) / f"{found.group(1)}.png"
        return path if path.is_file() else None

    def _folder(self, tenant_id: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tenant_id):
            raise ValueError(f"unexpected tenant id {tenant_id!r}")
        return self.root / tenant_id

    def accept(self, tenant_id: str, image: str | None) -> str | None:
        """What a product given through the API may keep as its ``image``: None, a stored asset
        of this tenant, or an https URL fetched and stored now. Raises ImageRejected."""
        if image is None:
            return None
        if ASSET_REF.match(image):
            if self.path(tenant_id, image) is None:
                raise ImageRejected(f"no stored image {image!r} for this tenant")
            return image
        if image.lower().startswith("https://"):
            return self.save(tenant_id, self.fetch(image))
        raise ImageRejected(
            "must be an https:// URL (fetched once by the server) or an image uploaded with "
            "POST /v1/products/{id}/image; server file paths are not accepted"
        )

    # --- fetching -----------------------------------------------------------------------------

    def fetch(self, url: str) -> bytes:
        """GET an https URL once: checked address, verified certificate, no redirects, at most
        ``max_bytes`` within ``fetch_timeout_s``."""
        try:
            parts = urlsplit(url)
            port = parts.port or 443
        except ValueError as e:
            raise ImageRejected(f"not a valid URL: {e}") from None
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ImageRejected("image URLs must be https:// with a host")
        try:
            target = self.policy.target(parts.hostname, port)
        except NetRefused as e:
            raise ImageRejected(str(e)) from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        deadline = time.monotonic() + self.fetch_timeout_s
        conn = _PinnedHttps(target, self.ca_file, self.fetch_timeout_s)
        try:
            conn.request("GET", path, headers={"User-Agent": "avatarcast", "Accept": "image/*"})
            response = conn.getresponse()
            if response.status != 200:
                raise ImageRejected(f"the image URL answered {response.status} (need 200)")
            body = bytearray()
            while chunk := response.read(64 * 1024):
                body += chunk
                if len(body) > self.max_bytes:
                    raise ImageRejected(f"the image is larger than {self.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise ImageRejected(f"the image took longer than {self.fetch_timeout_s} s")
            return bytes(body)
        except (OSError, http.client.HTTPException) as e:
            raise ImageRejected(f"cannot fetch the image URL: {type(e).__name__}: {e}") from None
        finally:
            conn.close()


class _PinnedHttps(http.client.HTTPSConnection):
    """HTTPS to the checked address, with the URL's host for SNI, the certificate and Host."""

    def __init__(self, target: Target, ca_file: str | None, timeout: float) -> None:
        self._tls = client_context(ca_file)
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._target, self._connect_timeout = target, timeout

    def connect(self) -> None:
        raw = self._target.connect(self._connect_timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def normalised_png(data: bytes, *, max_bytes: int, max_pixels: int) -> bytes:
    """``data`` decoded (PNG, JPEG or WebP within the limits) and encoded again as PNG."""
    if len(data) > max_bytes:
        raise ImageRejected(f"the image is larger than {max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in FORMATS:
                raise ImageRejected(f"{im.format} images are not accepted: PNG, JPEG or WebP")
            width, height = im.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"the image is {width}x{height} pixels; at most {max_pixels} pixels"
                )
            im.load()  # decodes every pixel: a truncated or corrupt file fails here
            picture = im.convert("RGBA")
    except ImageRejected:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise ImageRejected(f"not a readable PNG, JPEG or WebP image: {e}") from None
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()
