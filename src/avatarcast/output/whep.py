"""WebRTC viewers (WHEP, RFC 9725) from the one shared encode.

The H.264 packets the encoder already made are split into RTP payloads once, here, and the
same payloads go to every viewer: each viewer's sender only adds its RTP header and SRTP, so
a viewer costs neither an encode nor a packetization. WebRTC has no AAC, so the programme's
PCM is pushed here separately and encoded to Opus once, for all viewers.

A viewer joins at the next keyframe; SPS/PPS ride in front of every keyframe so a late joiner
can decode. Each viewer's queue is bounded: a viewer that falls behind loses what is queued and
starts again at the next keyframe, so one slow connection never grows memory or holds back
the others.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.sdp import SessionDescription, parse_h264_profile_level_id
from av.packet import Packet

from avatarcast.errors import ConfigError, OutputError
from avatarcast.frames import SAMPLE_RATE, EncodedPacket
from avatarcast.output._whep_track import Packed, PacketTrack
from avatarcast.output.base import StreamHeaders
from avatarcast.output.ice import IceServer

__all__ = [
    "BadOfferError",
    "IceServer",
    "ViewerLimitError",
    "WhepSession",
    "WhepSink",
]

log = logging.getLogger(__name__)

VIDEO_CLOCK = Fraction(1, 90_000)
OPUS_TIME_BASE = Fraction(1, SAMPLE_RATE)
OPUS_FRAME = SAMPLE_RATE // 50  # 20 ms
_ANNEX_B = b"\x00\x00\x00\x01"


class BadOfferError(OutputError):
    """The viewer's SDP offer cannot be answered (malformed, or no H.264 we can send)."""


class ViewerLimitError(OutputError):
    """Every viewer slot is taken; a retry once someone leaves can succeed."""

    retryable = True


@dataclass(frozen=True, slots=True, kw_only=True)
class WhepSession:
    """One viewer as the HTTP layer sees it: the resource id and the SDP answer."""

    id: str
    answer_sdp: str


@dataclass(slots=True, kw_only=True)
class _Viewer:
    id: str
    pc: RTCPeerConnection
    video: PacketTrack
    audio: PacketTrack | None


class WhepSink:
    """A Sink that serves the encoded programme to WebRTC viewers.

    ``write`` takes the encoder's packets (AAC is ignored: WebRTC cannot carry it);
    ``push_pcm`` takes the programme's audio, mono int16 at 48 kHz, which is encoded to Opus
    once. ``connect``/``disconnect`` are what the WHEP HTTP layer calls. ``on_viewers`` hears
    the number of viewers (those still joining too) whenever it changes, so whoever feeds the
    sink can stop while nobody watches.
    """

    name = "whep"

    def __init__(
        self,
        *,
        ice_servers: Sequence[IceServer] = (),
        max_viewers: int = 50,
        queue_seconds: float = 2.0,
        opus_bitrate: int = 64_000,
        loopback_candidates: bool = True,
        on_viewers: Callable[[int], None] | None = None,
    ) -> None:
        if max_viewers < 1:
            raise ConfigError(f"max_viewers must be >= 1, got {max_viewers}")
        if queue_seconds <= 0:
            raise ConfigError(f"queue_seconds must be > 0, got {queue_seconds}")
        self.ice_servers = tuple(ice_servers)
        self.max_viewers = max_viewers
        self._queue_seconds = queue_seconds
        self._opus_bitrate = opus_bitrate
        self._loopback = loopback_candidates and not self.ice_servers
        self._viewers: dict[str, _Viewer] = {}
        self._joining = 0
        self._on_viewers = on_viewers
        self._told = 0
        self._tasks: set[asyncio.Task[bool]] = set()
        self._headers: StreamHeaders | None = None
        self._parameter_sets = b""
        self._video_capacity = 1
        self._video_codecs: list[Any] = []
        self._audio_codecs: list[Any] = []
        self._opus: Any = None
        self._h264 = H264Encoder()  # used only to packetize, never to encode
        self._opus_packer = OpusEncoder()
        self._pcm = np.zeros(0, np.int16)
        self._opus_pts: int | None = None
        self._closed = False

    # --- Sink ---------------------------------------------------------------------------------

    async def open(self, headers: StreamHeaders) -> None:
        if headers.video_codec != "h264":
            raise ConfigError(f"WHEP sends H.264 as encoded, not {headers.video_codec!r}")
        self._parameter_sets = _annex_b_parameter_sets(headers.video_extradata)
        self._video_codecs = _h264_capabilities(self._parameter_sets)
        self._audio_codecs = [
            c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name == "opus"
        ]
        self._video_capacity = max(1, round(headers.format.fps * self._queue_seconds))
        self._opus = _open_opus(self._opus_bitrate)
        self._headers = headers

    async def write(self, packet: EncodedPacket) -> None:
        if packet.kind != "video" or self._closed or not self._viewers:
            return
        data = packet.data
        if packet.keyframe and not _starts_with_sps(data):
            data = self._parameter_sets + data
        out = av.Packet(data)
        out.pts = out.dts = round(packet.pts * packet.time_base / VIDEO_CLOCK)
        out.time_base = VIDEO_CLOCK
        packed = Packed(*self._h264.pack(out))
        for viewer in self._viewers.values():
            viewer.video.offer(packed, keyframe=packet.keyframe)

    async def write_batch(self, packets: Sequence[EncodedPacket]) -> None:
        for packet in packets:
            await self.write(packet)

    def push_pcm(self, pcm: npt.NDArray[np.int16], *, pts: int) -> None:
        """Take programme audio (mono int16, 48 kHz; ``pts`` = index of its first sample).

        Opus runs inline, once for all viewers: measured 0.45 ms per 40 ms of audio (about 1%
        of the loop); move it to a thread if loop-lag measurements ever show it.
        """
        if self._opus is None or self._closed:
            return
        if not self._viewers or self._opus_pts is None or pts != self._opus_pts + len(self._pcm):
            self._opus_pts, self._pcm = pts, self._pcm[:0]  # idle, first call or a gap
        if not self._viewers:
            self._opus_pts += len(pcm)
            return
        self._pcm = np.concatenate((self._pcm, np.asarray(pcm, np.int16).ravel()))
        n = len(self._pcm) // OPUS_FRAME * OPUS_FRAME
        for start in range(0, n, OPUS_FRAME):
            frame = av.AudioFrame.from_ndarray(
                self._pcm[start : start + OPUS_FRAME].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self._opus_pts
            frame.time_base = OPUS_TIME_BASE
            self._opus_pts += OPUS_FRAME
            for encoded in self._opus.encode(frame):
                encoded.time_base = OPUS_TIME_BASE
                self._fan_out_audio(encoded)
        self._pcm = self._pcm[n:]

    async def aclose(self) -> None:
        self._closed = True
        for session_id in list(self._viewers):
            await self.disconnect(session_id)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- viewers ------------------------------------------------------------------------------

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def viewer_stats(self) -> dict[str, dict[str, int]]:
        """Packets handed to aiortc and dropped for lagging, per viewer and track."""
        return {
            v.id: {
                "video_sent": v.video.sent,
                "video_dropped": v.video.dropped,
                "audio_sent": v.audio.sent if v.audio else 0,
                "audio_dropped": v.audio.dropped if v.audio else 0,
            }
            for v in self._viewers.values()
        }

    async def connect(self, offer_sdp: str) -> WhepSession:
        """Answer a viewer's SDP offer; returns once ICE gathering is complete."""
        if self._headers is None or self._closed:
            raise OutputError("WHEP sink is not open", retryable=True)
        if len(self._viewers) + self._joining >= self.max_viewers:
            raise ViewerLimitError(f"all {self.max_viewers} WHEP viewer slots are taken")
        kinds = _offer_kinds(offer_sdp)
        self._joining += 1
        self._tell_viewers()
        try:
            viewer = await self._answer(offer_sdp, kinds)
        except BaseException:
            self._joining -= 1
            self._tell_viewers()
            raise
        self._joining -= 1
        self._viewers[viewer.id] = viewer
        viewer.pc.on("connectionstatechange", lambda: self._on_state(viewer))
        log.info("WHEP viewer %s joined (%d watching)", viewer.id, len(self._viewers))
        return WhepSession(id=viewer.id, answer_sdp=viewer.pc.localDescription.sdp)

    async def disconnect(self, session_id: str) -> bool:
        """Close one viewer's peer connection; False if there is no such viewer."""
        viewer = self._viewers.pop(session_id, None)
        if viewer is None:
            return False
        self._tell_viewers()
        await viewer.pc.close()
        log.info("WHEP viewer %s left (%d watching)", session_id, len(self._viewers))
        return True

    def _tell_viewers(self) -> None:
        """Report the viewers, joining ones included, to ``on_viewers`` when the number moved."""
        n = len(self._viewers) + self._joining
        if self._on_viewers is not None and n != self._told:
            self._told = n
            self._on_viewers(n)

    async def _answer(self, offer_sdp: str, kinds: set[str]) -> _Viewer:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._rtc_ice_servers()))
        try:
            video = PacketTrack("video", capacity=self._video_capacity)
            transceiver = pc.addTransceiver(video, direction="sendonly")
            transceiver.setCodecPreferences(self._video_codecs)
            video.feed(transceiver.sender)
            audio = None
            if "audio" in kinds:
                audio = PacketTrack("audio", capacity=round(50 * self._queue_seconds))
                transceiver = pc.addTransceiver(audio, direction="sendonly")
                transceiver.setCodecPreferences(self._audio_codecs)
                audio.feed(transceiver.sender)
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            except Exception as exc:  # aiortc raises ValueError, OperationError, ...
                raise BadOfferError(f"cannot accept the SDP offer: {exc}") from exc
            answer = await pc.createAnswer()
            if self._loopback:
                await _add_loopback_candidates(pc)
            await pc.setLocalDescription(answer)
        except BaseException:
            await pc.close()
            raise
        return _Viewer(id=secrets.token_urlsafe(12), pc=pc, video=video, audio=audio)

    def _on_state(self, viewer: _Viewer) -> None:
        if viewer.pc.connectionState in ("failed", "closed") and viewer.id in self._viewers:
            task = asyncio.get_running_loop().create_task(self.disconnect(viewer.id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _fan_out_audio(self, encoded: Packet[Any]) -> None:
        packed = Packed(*self._opus_packer.pack(encoded))
        for viewer in self._viewers.values():
            if viewer.audio is not None:
                viewer.audio.offer(packed, keyframe=True)

    def _rtc_ice_servers(self) -> list[RTCIceServer]:
        return [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.ice_servers
        ]


def _open_opus(bitrate: int) -> Any:
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = SAMPLE_RATE
    ctx.format = "s16"
    ctx.layout = "mono"
    ctx.bit_rate = bitrate
    ctx.time_base = OPUS_TIME_BASE
    ctx.options = {"application": "audio", "frame_duration": "20"}
    try:
        ctx.open()
    except av.FFmpegError as exc:
        raise OutputError(f"cannot open libopus at {bitrate} bit/s: {exc}") from exc
    return ctx


def _offer_kinds(offer_sdp: str) -> set[str]:
    if not offer_sdp.strip():
        raise BadOfferError("the SDP offer is empty")
    try:
        description = SessionDescription.parse(offer_sdp)
    except Exception as exc:  # the aiortc parser raises whatever the bad line trips
        raise BadOfferError(f"malformed SDP offer: {exc!r}") from exc
    kinds = {m.kind for m in description.media}
    if "video" not in kinds:
        raise BadOfferError("the SDP offer has no video m-line")
    return kinds


def _nal_units(annex_b: bytes) -> list[bytes]:
    return [n.lstrip(b"\x00") for n in annex_b.split(b"\x00\x00\x01") if n.strip(b"\x00")]


def _annex_b_parameter_sets(extradata: bytes) -> bytes:
    if not extradata.startswith((b"\x00\x00\x01", _ANNEX_B)):
        raise ConfigError("WHEP needs Annex B SPS/PPS in the encoder's video extradata")
    units = [n for n in _nal_units(extradata) if n[0] & 0x1F in (7, 8)]
    if not any(n[0] & 0x1F == 7 for n in units):
        raise ConfigError("the encoder's video extradata holds no SPS")
    return b"".join(_ANNEX_B + n for n in units)


def _starts_with_sps(data: bytes) -> bool:
    units = _nal_units(data[:64])
    return bool(units) and units[0][0] & 0x1F == 7


def _h264_capabilities(parameter_sets: bytes) -> list[Any]:
    """aiortc's H.264 codecs (packetization-mode=1) whose profile is the stream's own."""
    sps = next(n for n in _nal_units(parameter_sets) if n[0] & 0x1F == 7)
    profile_level_id = sps[1:4].hex()
    try:
        profile, _level = parse_h264_profile_level_id(profile_level_id)
    except ValueError as exc:
        raise ConfigError(f"unknown H.264 profile-level-id {profile_level_id}") from exc
    matching = []
    for codec in RTCRtpSender.getCapabilities("video").codecs:
        params = codec.parameters
        if codec.name == "H264" and params.get("packetization-mode") == "1":
            theirs, _ = parse_h264_profile_level_id(str(params.get("profile-level-id")))
            if theirs == profile:
                matching.append(codec)
    if not matching:
        raise ConfigError(
            f"WebRTC (aiortc) cannot negotiate the encoder's H.264 profile {profile.name} "
            f"({profile_level_id}); use a constrained baseline preset such as ultrafast"
        )
    return matching


async def _add_loopback_candidates(pc: RTCPeerConnection) -> None:
    """Offer a 127.0.0.1 host candidate too, which aioice leaves out.

    Without it a viewer on the same host finds no path when loopback is the only interface
    (containers, CI). Only used with no STUN/TURN servers: aioice would also query those from
    the loopback socket.
    """
    transports = {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}
    for dtls in transports.values():
        connection = getattr(dtls.transport.iceGatherer, "_connection", None)
        if connection is None or not hasattr(connection, "_local_candidates"):
            log.warning("aiortc internals changed: no loopback ICE candidate added")
            return
        await connection.gather_candidates()
        if any(c.host == "127.0.0.1" for c in connection.local_candidates):
            continue
        connection._local_candidates += await connection.get_component_candidates(
            component=1, addresses=["127.0.0.1"]
        )
