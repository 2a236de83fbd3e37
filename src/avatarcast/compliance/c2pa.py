"""C2PA Content Credentials for recordings and renders (EU AI Act Art. 50 machine marking).

Each MP4 gets a manifest saying it was created (``c2pa.created``) as
``trainedAlgorithmicMedia``, by ``avatarcast/<version>``, with the GB 45438-2025 AIGC fields as
a custom assertion. Signing goes through c2pa-python (``pip install 'avatarcast[c2pa]'``),
imported only when used. A file is signed into a temporary file beside it and then renamed
over it, so a reader sees the unsigned or the signed file, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from avatarcast import __version__
from avatarcast.errors import ComplianceError, ConfigError

if TYPE_CHECKING:
    from avatarcast.settings import C2paSettings

__all__ = [
    "AIGC_LABEL",
    "DIGITAL_SOURCE_TYPE",
    "C2paReport",
    "SignerConfig",
    "build_manifest",
    "read_c2pa",
    "segment_signer",
    "sign_mp4",
]

log = logging.getLogger(__name__)

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
#: Label of the custom assertion carrying the GB 45438-2025 Annex E fields.
AIGC_LABEL = "org.avatarcast.aigc.gb45438"
AIGC_FIELDS = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)
Algorithm = Literal["es256", "ps256"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignerConfig:
    """PEM files: the chain starts with the signing (end-entity) certificate, root left out."""

    cert_chain: Path
    private_key: Path
    algorithm: Algorithm = "es256"
    tsa_url: str | None = None

    @classmethod
    def from_section(cls, section: C2paSettings) -> SignerConfig:
        """From ``settings.c2pa``; ConfigError when the certificate chain or key is unset."""
        if section.cert_chain is None or section.private_key is None:
            raise ConfigError("c2pa signing needs c2pa.cert_chain and c2pa.private_key")
        return cls(
            cert_chain=Path(section.cert_chain),
            private_key=Path(section.private_key),
            algorithm=section.algorithm,
            tsa_url=section.tsa_url,
        )


def build_manifest(*, title: str, aigc: Mapping[str, str]) -> dict[str, Any]:
    """The manifest definition c2pa-python's ``Builder`` takes."""
    agent = {"name": "avatarcast", "version": __version__}
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": agent,
                        }
                    ]
                },
            },
            {"label": AIGC_LABEL, "data": {k: str(aigc.get(k, "")) for k in AIGC_FIELDS}},
        ],
    }


def read_aigc(path: Path) -> dict[str, str]:
    """The ``AIGC`` JSON avatarcast writes into the container metadata."""
    import av

    try:
        with av.open(str(path)) as container:
            text = container.metadata.get("AIGC") or container.metadata.get("aigc")
    except (av.FFmpegError, OSError) as e:
        raise ComplianceError(f"cannot read {path}: {e}") from e
    if not text:
        raise ComplianceError(f"{path} has no AIGC metadata; pass aigc= explicitly")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ComplianceError(f"{path}: AIGC metadata is not JSON") from None
    return {str(k): str(v) for k, v in data.items()}


def sign_mp4(
    path: Path,
    *,
    signer_config: SignerConfig,
    aigc: Mapping[str, str] | None = None,
    title: str | None = None,
) -> None:
    """Embed a signed manifest in the MP4 at ``path`` (replaced atomically)."""
    c2pa = _c2pa()
    path = Path(path)
    manifest = build_manifest(title=title or path.name, aigc=aigc or read_aigc(path))
    try:
        info = c2pa.C2paSignerInfo(
            signer_config.algorithm,
            signer_config.cert_chain.read_bytes(),
            signer_config.private_key.read_bytes(),
            signer_config.tsa_url,
        )
    except OSError as e:
        raise ConfigError(f"c2pa: cannot read the certificate or key: {e}") from e
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".c2pa.mp4", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Builder(manifest) as builder,
            path.open("rb") as src,
            os.fdopen(fd, "w+b") as dst,
        ):
            builder.sign(signer, "video/mp4", src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, path)
    except c2pa.C2paError as e:
        tmp.unlink(missing_ok=True)
        raise ComplianceError(f"c2pa signing of {path} failed: {e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def segment_signer(
    signer_config: SignerConfig, *, aigc: Mapping[str, str] | None = None
) -> Callable[[Path], None]:
    """A ``SegmentedRecorder(on_segment_closed=...)`` hook: sign each closed segment.

    A failure is logged, not raised: an unsigned segment is better than a stopped recording.
    """

    def sign(path: Path) -> None:
        try:
            sign_mp4(path, signer_config=signer_config, aigc=aigc)
        except (ComplianceError, ConfigError) as e:
            log.error("segment %s left unsigned: %s", path, e)

    return sign


@dataclass(frozen=True, slots=True)
class C2paReport:
    """What a reader found: ``state`` is Invalid, Valid or Trusted."""

    state: str | None
    manifest: dict[str, Any] | None
    failures: list[str] = field(default_factory=list)

    def actions(self) -> list[dict[str, Any]]:
        for assertion in (self.manifest or {}).get("assertions", []):
            if str(assertion.get("label", "")).startswith("c2pa.actions"):
                return list(assertion["data"]["actions"])
        return []

    def assertion(self, label: str) -> dict[str, Any] | None:
        for assertion in (self.manifest or {}).get("assertions", []):
            if assertion.get("label") == label:
                return dict(assertion["data"])
        return None


def read_c2pa(path: Path, *, trust_anchors: Path | None = None) -> C2paReport:
    """Read and validate the manifest of ``path``; ``trust_anchors`` is a PEM of roots."""
    c2pa = _c2pa()
    context = None
    if trust_anchors is not None:
        settings = c2pa.Settings.from_dict({"trust": {"trust_anchors": trust_anchors.read_text()}})
        context = c2pa.Context(settings=settings)
    try:
        with c2pa.Reader(str(path), context=context) as reader:
            results = reader.get_validation_results() or {}
            failures = [
                str(item["code"]) for item in results.get("activeManifest", {}).get("failure", [])
            ]
            return C2paReport(reader.get_validation_state(), reader.get_active_manifest(), failures)
    except c2pa.C2paError as e:
        raise ComplianceError(f"cannot read a C2PA manifest from {path}: {e}") from e


def _c2pa() -> Any:
    try:
        import c2pa
    except ImportError as e:
        raise ConfigError("C2PA signing needs c2pa-python: pip install 'avatarcast[c2pa]'") from e
    return c2pa
