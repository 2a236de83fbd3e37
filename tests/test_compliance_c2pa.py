"""C2PA on real MP4s: a test CA signs, c2pa-python reads back and validates.

Validation against the default trust list reports one failure, ``signingCredential.untrusted``
(state ``Valid``): the test root is nobody's trust anchor. With the test root given as trust
anchor the state is ``Trusted`` and there are no failures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from avatarcast import __version__
from avatarcast.compliance.c2pa import (
    AIGC_LABEL,
    DIGITAL_SOURCE_TYPE,
    SignerConfig,
    read_c2pa,
    segment_signer,
    sign_mp4,
)
from avatarcast.errors import ComplianceError
from avatarcast.frames import StreamFormat
from avatarcast.output.encoder import Encoder
from avatarcast.output.mp4 import Mp4FileSink
from avatarcast.output.recording import SegmentedRecorder
from synthetic_programme import ffprobe, frames

AIGC = {
    "Label": "1",
    "ContentProducer": "acme",
    "ProduceID": "stream-1",
    "ReservedCode1": "",
    "ContentPropagator": "acme",
    "PropagateID": "stream-1",
    "ReservedCode2": "",
}
FMT = StreamFormat(
    width=320, height=240, fps=25, metadata={"AIGC": json.dumps(AIGC), "title": "test"}
)


@dataclass(frozen=True)
class Pki:
    root: Path
    config: SignerConfig


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "avatarcast tests"),
        ]
    )


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_pki(folder: Path, algorithm: str) -> Pki:
    """A root CA and an end-entity signer with what C2PA asks of one: not a CA, the
    digitalSignature key usage, and an accepted extended key usage (emailProtection here;
    documentSigning and the C2PA claim-signing OID are accepted too)."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("avatarcast test root"))
        .issuer_name(_name("avatarcast test root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if algorithm == "es256"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("avatarcast test signer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "root.pem").write_bytes(root.public_bytes(pem))
    (folder / "chain.pem").write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    (folder / "signer.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    config = SignerConfig(
        cert_chain=folder / "chain.pem",
        private_key=folder / "signer.key",
        algorithm="es256" if algorithm == "es256" else "ps256",
    )
    return Pki(folder / "root.pem", config)


async def encode_into(sinks: list[Mp4FileSink | SegmentedRecorder], seconds: float) -> None:
    enc = Encoder(FMT)
    for s in sinks:
        await s.open(enc.headers)
    for frame in frames(FMT, seconds):
        for p in await asyncio.to_thread(enc.encode, frame):
            for s in sinks:
                await s.write(p)
    for p in await asyncio.to_thread(enc.flush):
        for s in sinks:
            await s.write(p)
    for s in sinks:
        await s.aclose()


def decoded_frames(path: Path) -> int:
    probe = ffprobe(path, "-count_frames", "-select_streams", "v:0", "-show_streams")
    return int(probe["streams"][0]["nb_read_frames"])


def assert_credentials(path: Path, pki: Pki) -> None:
    report = read_c2pa(path)
    assert report.manifest is not None
    assert report.state == "Valid"
    assert report.failures == ["signingCredential.untrusted"]
    generator = report.manifest["claim_generator_info"][0]
    assert (generator["name"], generator["version"]) == ("avatarcast", __version__)
    [action] = report.actions()
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert report.assertion(AIGC_LABEL) == AIGC
    trusted = read_c2pa(path, trust_anchors=pki.root)
    assert (trusted.state, trusted.failures) == ("Trusted", [])


@pytest.mark.parametrize("algorithm", ["es256", "ps256"])
def test_a_render_output_is_signed_in_place(tmp_path: Path, algorithm: str) -> None:
    pki = make_pki(tmp_path, algorithm)
    out = tmp_path / "render.mp4"
    asyncio.run(encode_into([Mp4FileSink(out)], 2.0))
    sign_mp4(out, signer_config=pki.config)  # the AIGC fields come from the file's metadata
    assert_credentials(out, pki)
    assert decoded_frames(out) == 50
    tags = ffprobe(out, "-show_format")["format"]["tags"]
    assert json.loads(tags["AIGC"]) == AIGC
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["root.pem", "chain.pem", "signer.key", "render.mp4"]
    )


def test_recorder_signs_each_closed_segment(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, "es256")
    rec_dir = tmp_path / "rec"
    recorder = SegmentedRecorder(
        rec_dir,
        segment_seconds=2,
        metadata=FMT.metadata,
        on_segment_closed=segment_signer(pki.config),
    )
    asyncio.run(encode_into([recorder], 4.0))
    index = json.loads((rec_dir / "index.json").read_text())
    files = [s["file"] for s in index["segments"]]
    assert files == ["segment-00001.mp4", "segment-00002.mp4"]
    assert sorted(p.name for p in rec_dir.iterdir()) == ["index.json", *files]
    for name in files:
        assert_credentials(rec_dir / name, pki)
        assert decoded_frames(rec_dir / name) == 50


def test_a_tampered_file_fails_validation(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, "es256")
    out = tmp_path / "render.mp4"
    asyncio.run(encode_into([Mp4FileSink(out)], 1.0))
    sign_mp4(out, signer_config=pki.config)
    data = bytearray(out.read_bytes())
    mdat = data.rfind(b"mdat")
    data[mdat + 200] ^= 0xFF  # one byte of coded video
    out.write_bytes(bytes(data))
    report = read_c2pa(out)
    assert report.state == "Invalid"
    assert any(code.startswith("assertion.bmffHash.mismatch") for code in report.failures)


def test_bad_key_leaves_the_file_alone(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, "es256")
    (tmp_path / "other").mkdir()
    other = make_pki(tmp_path / "other", "es256")
    out = tmp_path / "render.mp4"
    asyncio.run(encode_into([Mp4FileSink(out)], 1.0))
    before = out.read_bytes()
    wrong = SignerConfig(cert_chain=pki.config.cert_chain, private_key=other.config.private_key)
    with pytest.raises(ComplianceError):
        sign_mp4(out, signer_config=wrong)
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_render_and_live_recordings_are_signed_from_settings(tmp_path: Path) -> None:
    """`avatarcast render` and `live --record` sign what they write when c2pa is enabled."""
    import os
    import subprocess
    import sys

    pki = make_pki(tmp_path, "es256")
    env = {
        **os.environ,
        "AVATARCAST_C2PA__ENABLED": "true",
        "AVATARCAST_C2PA__CERT_CHAIN": str(pki.config.cert_chain),
        "AVATARCAST_C2PA__PRIVATE_KEY": str(pki.config.private_key),
    }
    demo = Path(__file__).resolve().parents[1] / "configs" / "demo-catalog.json"
    out = tmp_path / "signed.mp4"
    rec = tmp_path / "rec"
    for args in (
        ["render", "--duration", "2", "--out", str(out)],
        ["live", "--duration", "4", "--record", str(rec), "--segment-seconds", "2"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "avatarcast.cli", *args, "--catalog", str(demo)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr
    for path in [out, *sorted(rec.glob("segment-*.mp4"))]:
        report = read_c2pa(path, trust_anchors=pki.root)
        assert report.state == "Trusted", (path, report.failures)
        assert report.actions()[0]["digitalSourceType"] == DIGITAL_SOURCE_TYPE
        aigc = report.assertion(AIGC_LABEL)
        assert aigc is not None and aigc["Label"] == "1" and aigc["ContentProducer"]
    assert len(list(rec.glob("segment-*.mp4"))) >= 2
