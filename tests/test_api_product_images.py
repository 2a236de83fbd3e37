"""Product images through a real ``avatarcast serve``: no server file paths, a per-tenant store.

OWASP API8:2023 (Security Misconfiguration) / API1:2023 (BOLA): an ``image`` path made the
server open any file (``/etc/passwd``, ``../../``) or another tenant's asset.
OWASP API7:2023 (SSRF): an image URL is fetched once, https only, to public or allowed hosts.
"""

from __future__ import annotations

import io
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
from PIL import Image

from served import Served, serve
from tls_front import TlsFront, make_ca, make_leaf

PRODUCT = {"id": "kettle", "title": "Kettle", "brand": "Kovana", "price": "49.99"}


def _png(w: int, h: int, fmt: str = "PNG") -> bytes:
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[..., 0] = np.arange(w, dtype=np.uint8)[None, :] * 3
    pixels[..., 1] = np.arange(h, dtype=np.uint8)[:, None] * 5
    pixels[h // 2 :, :, 2] = 200
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


class _Files(SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        _Files.requests.append(self.path)


def _https_files(tmp_path: Path, ca_signer: Any) -> tuple[ThreadingHTTPServer, TlsFront]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "kettle.png").write_bytes(_png(64, 48))
    noise = np.random.default_rng(1).integers(0, 255, (600, 600, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "big.png")  # ~1 MB: random pixels do not compress
    (root / "notes.txt").write_text("not an image")
    http = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Files, directory=str(root)))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    front = TlsFront(make_leaf(tmp_path / "leaf", "localhost", ca_signer), http.server_port)
    return http, front


def _create(s: Served, c: httpx.Client, image: str, key: dict[str, str] | None = None) -> Any:
    return c.post("/v1/products", json={**PRODUCT, "image": image}, headers=key or s.auth())


def test_images_never_server_paths_and_fetched_once_api8_api7_2023(tmp_path: Path) -> None:
    """API8:2023 (no file paths), API7:2023 (https fetch rules), API1:2023 (per tenant)."""
    ca, signer = make_ca(tmp_path / "ca")
    http, front = _https_files(tmp_path, signer)
    env = {
        "AVATARCAST_IMAGES__DIR": str(tmp_path / "images"),
        "AVATARCAST_IMAGES__MAX_PIXELS": "1000000",
        "AVATARCAST_IMAGES__MAX_BYTES": "400000",
        "AVATARCAST_TLS__CA_FILE": str(ca.cert),
        "AVATARCAST_API__PRIVATE_DESTINATION_HOSTS": '["localhost"]',
    }
    bodies: list[str] = []
    try:
        with serve(tmp_path / "serve", env) as s, s.client() as c:
            refused = {
                "/etc/passwd": "server file paths are not accepted",
                "../../etc/passwd": "server file paths are not accepted",
                "file:///etc/passwd": "server file paths are not accepted",
                f"http://localhost:{http.server_port}/kettle.png": "not accepted",
                f"https://127.0.0.1:{front.port}/kettle.png": "is not a public address",
                "https://no-such-host.invalid/x.png": "does not resolve",
                f"https://localhost:{front.port}/notes.txt": "not a readable PNG, JPEG or WebP",
                f"https://localhost:{front.port}/big.png": "larger than 400000 bytes",
                f"https://localhost:{front.port}/missing.png": "answered 404",
            }
            for image, reason in refused.items():
                r = _create(s, c, image)
                bodies.append(r.text)
                assert r.status_code == 422, (image, r.text)
                error = r.json()["errors"][0]
                assert error["field"] == "body.image" and reason in error["message"], (
                    image,
                    r.text,
                )
            assert c.get("/v1/products", headers=s.auth()).json()["items"] == []
            # an https URL is fetched once and stored; the product names the asset, no path
            _Files.requests.clear()
            r = _create(s, c, f"https://localhost:{front.port}/kettle.png")
            bodies.append(r.text)
            assert r.status_code == 201, r.text
            ref = r.json()["image"]
            assert ref.startswith("asset:") and len(ref) == 6 + 64
            assert _Files.requests == ["/kettle.png"]
            got = c.get("/v1/products/kettle/image", headers=s.auth("backend"))
            assert got.status_code == 200 and got.headers["content-type"] == "image/png"
            stored = np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB"))
            expected = np.asarray(Image.open(io.BytesIO(_png(64, 48))).convert("RGB"))
            assert np.array_equal(stored, expected)
            # the asset is this tenant's: another tenant cannot point at it or read it
            other = {"Authorization": f"Bearer {s.other_key}"}
            r = _create(s, c, ref, other)
            bodies.append(r.text)
            assert r.status_code == 422 and "no stored image" in r.text
            assert c.get("/v1/products/kettle/image", headers=other).status_code == 404
            # uploads: decoded and checked, kept as PNG
            _upload_checks(s, c, bodies)
            # an import with a server path reports the row and imports the rest
            feed = [{**PRODUCT, "id": "a", "image": "/etc/shadow"}, {**PRODUCT, "id": "b"}]
            r = c.post(
                "/v1/products/import?format=json", content=json.dumps(feed), headers=s.auth()
            )
            bodies.append(r.text)
            assert r.status_code == 200, r.text
            assert r.json()["imported"] == 1
            assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [("a", "image")]
            for path in (tmp_path / "images").rglob("*"):
                assert (path.stat().st_mode & 0o777) == (0o700 if path.is_dir() else 0o600)
    finally:
        http.shutdown()
        front.close()
    for body in bodies:
        assert str(tmp_path) not in body and "/etc/" not in body.replace('"/etc/', "")


def _upload_checks(s: Served, c: httpx.Client, bodies: list[str]) -> None:
    url = "/v1/products/kettle/image"
    bad = {
        "text": (b"hello", "not a readable PNG, JPEG or WebP"),
        "gif": (_png(8, 8, "GIF"), "GIF images are not accepted"),
        "truncated": (_png(64, 48)[:90], "not a readable"),
        "huge": (_png(1001, 1000, "JPEG"), "at most 1000000 pixels"),
    }
    for what, (data, reason) in bad.items():
        r = c.post(url, files={"file": ("x", data)}, headers=s.auth("backend"))
        bodies.append(r.text)
        assert r.status_code == 422, (what, r.text)
        assert reason in r.json()["errors"][0]["message"], (what, r.text)
    jpeg = _png(40, 30, "JPEG")
    r = c.post(url, files={"file": ("k.jpg", jpeg)}, headers=s.auth("backend"))
    bodies.append(r.text)
    assert r.status_code == 200, r.text
    got = c.get(url, headers=s.auth()).content
    assert Image.open(io.BytesIO(got)).size == (40, 30)
    assert c.get("/v1/products/kettle", headers=s.auth()).json()["image"] == r.json()["image"]
    missing = c.post("/v1/products/nope/image", files={"file": ("k.jpg", jpeg)}, headers=s.auth())
    assert missing.status_code == 404
