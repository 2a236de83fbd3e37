"""The root of all configuration: defaults, then ``configs/avatarcast.toml``, then environment.

Only the app factory and the CLI build a :class:`Settings`; everything below them receives a
section (``settings.api``, ``settings.stream`` ...) or plain keyword arguments.

Environment variables use the prefix ``AVATARCAST_`` and ``__`` between nested names, e.g.
``AVATARCAST_API__PORT=9000`` or ``AVATARCAST_LLM__API_KEY=sk-...``. The TOML file is read from
``AVATARCAST_CONFIG`` when set, else ``configs/avatarcast.toml`` relative to the working
directory; a missing default file is not an error, a missing explicit one is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from avatarcast.errors import ConfigError
from avatarcast.netpolicy import NetPolicy

DEFAULT_CONFIG_PATH = Path("configs/avatarcast.toml")
CONFIG_ENV = "AVATARCAST_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimitSettings(_Section):
    """Token bucket per API key: ``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float = Field(default=20.0, gt=0)
    burst: int = Field(default=40, ge=1)


class LoadSheddingSettings(_Section):
    """How many API requests run at once and how many may wait; the rest get 503 at once."""

    running: int = Field(default=32, ge=1, le=1024)
    waiting: int = Field(default=256, ge=0, le=100_000)
    #: A request that waited this long is answered 503: its client has likely given up.
    wait_s: float = Field(default=2.0, gt=0, le=60)
    #: Slots kept for stop, kill, mute, pause and supervisor heartbeats, apart from the others.
    control: int = Field(default=8, ge=1, le=256)


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    body_limit_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    load_shedding: LoadSheddingSettings = Field(default_factory=LoadSheddingSettings)
    #: Every loopback/private/link-local address may be a destination or an image URL's
    #: host (a lab, the tests). Off: such addresses are refused (OWASP API7:2023, SSRF).
    allow_private_destinations: bool = False
    #: Host names (not addresses) that may resolve to private addresses all the same, e.g. the
    #: RTMP service of a compose file ("rtmp"); everything else stays public-only.
    private_destination_hosts: list[str] = Field(default_factory=list)
    migrate_on_start: bool = True
    #: How long a key row is reused before it is read again; also the most a revocation made
    #: outside this process (another API process, a hand edit) takes to be seen. 0: no cache.
    key_cache_s: float = Field(default=2.0, ge=0, le=60)
    #: A log line per request (uvicorn's access log). Off by default, as in gunicorn: at
    #: hundreds of requests a second it is a good share of the API's CPU, and every request
    #: is already counted in /metrics and every change written to the audit trail.
    access_log: bool = False
    #: ``/metrics`` needs ``Authorization: Bearer <token>`` when set; when empty it answers
    #: loopback clients only (behind a reverse proxy on the same host, set a token).
    metrics_token: SecretStr = SecretStr("")
    #: How often the server checks that its database answers (``control/dbwatch``): losing
    #: it, and getting it back, is an event (kind ``database``) and an alert to webhooks.
    database_check_s: float = Field(default=1.0, gt=0, le=60)

    def net_policy(self) -> NetPolicy:
        """What the server may connect to on a tenant's behalf (destinations, image URLs)."""
        return NetPolicy(
            allow_private=self.allow_private_destinations,
            private_hosts=frozenset(h.lower() for h in self.private_destination_hosts),
        )


class StreamDefaults(_Section):
    width: int = Field(default=1280, ge=16, le=7680)
    height: int = Field(default=720, ge=16, le=4320)
    fps: int = Field(default=25, ge=1, le=120)
    lang: str = "en"
    avatar: str = "default"
    voice: str = "default"
    writer: str = "template"
    #: Per language, the words an AI label's text must contain (``[terms]`` in TOML).
    ai_disclosure_terms: Path = Path("configs/ai-disclosure.toml")


class SupervisionSettings(_Section):
    """A human supervisor's heartbeats: when they lapse, safe mode, then the stream stops."""

    heartbeat_timeout_s: float = Field(default=60.0, gt=0)
    stop_after_s: float = Field(default=300.0, gt=0)
    check_interval_s: float = Field(default=0.5, gt=0, le=2.0)


class ConsoleSettings(_Section):
    """The web console at ``/console``: sign-in sessions and the wall's heartbeats."""

    #: a session ends after this long without a request, and this long after sign-in
    session_idle_s: float = Field(default=30 * 60, gt=0)
    session_absolute_s: float = Field(default=12 * 3600, gt=0)
    #: the wall sends heartbeats while its page is visible and the supervisor acted (a key,
    #: a click, a pointer move) within this many seconds; then it asks "still watching?"
    activity_s: float = Field(default=300.0, gt=0)


class ChatSettings(_Section):
    """Limits on viewer chat handed to a stream through the API."""

    max_batch: int = Field(default=500, ge=1)
    max_text: int = Field(default=500, ge=1)
    #: The largest WebSocket frame taken (a full batch of long messages fits); larger closes.
    max_frame_bytes: int = Field(default=512 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: Frames per second a chat socket is served at, after a burst; faster ones wait.
    frames_per_s: float = Field(default=50.0, gt=0)
    frames_burst: int = Field(default=100, ge=1)
    #: Viewer messages per second one stream takes (all batches and sockets), after a burst;
    #: the rest are rejected with reason "budget" before they reach the stream's worker.
    stream_messages_per_s: float = Field(default=20.0, gt=0)
    stream_messages_burst: int = Field(default=500, ge=1)


class ChatSourcesSettings(_Section):
    """Platform chat sources (Twitch, YouTube, webhooks): grouping, pacing and limits."""

    #: similar questions arriving within this hold share one answer
    hold_s: float = Field(default=0.3, ge=0.0, le=10.0)
    #: at most one question group goes to the voice per this many seconds
    spoken_every_s: float = Field(default=6.0, gt=0)
    #: a written answer not sent within this (platform rate limit) is given up as overflow
    max_age_s: float = Field(default=20.0, gt=0)
    #: how long a viewer's questions and answers are remembered for follow-ups
    retention_s: float = Field(default=1800.0, ge=0)
    #: a webhook post's timestamp may be this far from now; signatures are replay-checked
    webhook_window_s: float = Field(default=300.0, gt=0)
    #: the largest webhook post taken
    webhook_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_sources_per_stream: int = Field(default=8, ge=1)
    #: the folder a Twitch source's ``ca_file`` (a private CA) must lie in; None: no ca_file
    ca_dir: Path | None = None
    #: how often stored sources of streams on air are opened if they are not (after a start)
    reopen_every_s: float = Field(default=5.0, gt=0)
    #: how often each stream's chat account is saved (it survives a restart)
    account_save_s: float = Field(default=1.0, gt=0)


class LlmSettings(_Section):
    """An OpenAI-compatible endpoint for the ``llm`` script writer (none unless configured)."""

    base_url: str = ""
    model: str = "llama3.1"
    api_key: SecretStr = SecretStr("")
    timeout_s: float = Field(default=30.0, gt=0)


class TtsSettings(_Section):
    """Network voices (``openai:*``, ``edge:*``); each falls back to espeak when it fails.

    An empty ``base_url`` or ``api_key`` borrows the ``[llm]`` one, so one OpenAI-compatible
    endpoint can serve both the writer and the voice.
    """

    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    model: str = "gpt-4o-mini-tts"
    timeout_s: float = Field(default=15.0, gt=0)
    edge_proxy: str | None = None
    failures_to_open: int = Field(default=3, ge=1)
    cooldown_s: float = Field(default=60.0, ge=0)


class IceServer(_Section):
    urls: list[str]
    username: str | None = None
    credential: SecretStr | None = None


class RunnerSettings(_Section):
    """How stream workers run beside the API."""

    #: Nice steps below the API process. The API is the operators' way in (a kill or a mute must
    #: get through when the streams fill the machine), and a stream has the slack of a frame
    #: period where a request has none; 0 runs workers at the API's priority.
    worker_nice: int = Field(default=5, ge=0, le=19)
    #: Keep one worker process ready (imports done) for the next start or restart: a killed
    #: stream is back on air seconds sooner, for ~100 MB of memory per server.
    spare_worker: bool = True
    #: Fork each worker from a zygote process that imported the pipeline once at the server's
    #: start: a start skips the worker's imports, and the imported modules' memory is shared
    #: by the workers (``runner.zygote``; figures in benchmarks/README.md). The spare worker
    #: and cold starts remain for while the zygote is down.
    zygote: bool = True
    #: Where streams run: ``local`` (worker processes beside the API) or ``ray`` (a detached
    #: actor per stream on a Ray cluster, the ``avatarcast[ray]`` extra; ``runner.cluster``).
    backend: Literal["local", "ray"] = "local"
    #: The Ray cluster's GCS address ``host:port``; None: ``RAY_ADDRESS`` or a local cluster.
    ray_address: str | None = None
    #: What one stream's actor reserves on its node; an ``onnx`` twin also takes ``ray_onnx_gpus``.
    ray_num_cpus: float = Field(default=1.0, ge=0)
    ray_memory_mb: int = Field(default=1024, ge=0)
    ray_onnx_gpus: float = Field(default=0.0, ge=0)
    #: Each node's recordings root (``ROOT/node-ID/TENANT/STREAM``); None: the stream's own
    #: recordings folder with a ``node-ID`` folder in it.
    ray_recordings_dir: Path | None = None
    #: Idle actors each node keeps constructed (imports done) for the next start or restart
    #: there: a SIGKILLed stream's actor is replaced in ~0.5 s instead of a new Ray worker
    #: process's 2.7 s at load 6-7 once the node's prestarted workers are spent. Each
    #: reserves ``ray_num_cpus`` and ``ray_memory_mb`` on its node while idle (its process:
    #: RSS 137, PSS 82, USS 71 MB); 0: a stream's actor is made when it starts and Ray
    #: restarts it.
    ray_spares: int = Field(default=1, ge=0)


class SchedulerSettings(_Section):
    """Night-shift windows and who acts on them when several API processes share a database.

    On PostgreSQL one process at a time is the scheduler's leader (a session advisory lock the
    server releases when the process dies); the others try again each tick. A stream on air is
    run by the process that holds its lease row, renewed every ``lease_ttl_s / 3``; one whose
    lease ran out (its process died) is taken over by another."""

    #: Seconds between ticks; windows open and close within this of their instant.
    tick_s: float = Field(default=5.0, gt=0, le=60)
    #: Seconds added to the scheduler's clock: a rehearsal of a night shift in daytime. Only
    #: the scheduler's "now" moves; media clocks, leases and timestamps stay on the wall clock.
    clock_offset_s: float = Field(default=0.0, ge=-366 * 86400, le=366 * 86400)
    #: A stream's lease lasts this long unrenewed: the longest a dead process's streams wait.
    lease_ttl_s: float = Field(default=15.0, ge=1, le=600)


class WhepSettings(_Section):
    ice_servers: list[IceServer] = Field(default_factory=list)
    #: Playback requests (offers, the player page) per second from one client address, and
    #: the burst allowed; apart from the API keys' budget (playback has no API key).
    viewer_rate: float = Field(default=1.0, gt=0)
    viewer_burst: int = Field(default=10, ge=1)
    #: ... and from every address together, per API process.
    viewer_total_rate: float = Field(default=20.0, gt=0)
    viewer_total_burst: int = Field(default=60, ge=1)
    #: The longest a signed viewer token may live.
    viewer_token_max_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)


class HlsSettings(_Section):
    """HLS: where streams write their playlists and segments, and who may fetch them."""

    #: each stream writes into ``dir/<tenant>/<stream>``; ``serve`` reads from there
    dir: Path = Path("./hls")
    #: shop origins (``https://shop.example``) whose pages may fetch the HLS files; "*": any
    cors_origins: list[str] = Field(default_factory=list)
    #: seconds a CDN may keep a live playlist (its segments are immutable: kept a day)
    playlist_max_age_s: int = Field(default=1, ge=0, le=60)


class RetentionSettings(_Section):
    """How long recordings, transcripts, chat and price logs and audit entries are kept."""

    days: int = Field(default=3 * 365, ge=1)


class ImageSettings(_Section):
    """Product images given through the API: stored per tenant under ``dir`` as PNG."""

    dir: Path = Path("./var/images")
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(default=25_000_000, ge=1)
    #: An https image URL is fetched once, within this time.
    fetch_timeout_s: float = Field(default=10.0, gt=0, le=120)


class TlsSettings(_Section):
    """Certificates the server checks when it connects out (rtmps destinations, image URLs).

    The system CA bundle is always trusted; ``ca_file`` (PEM) adds certificates to it, e.g. a
    company CA in front of an ingest, or a test CA.
    """

    ca_file: Path | None = None


class C2paSettings(_Section):
    """C2PA signing of recordings and renders; off until a certificate chain and key are set."""

    enabled: bool = False
    cert_chain: Path | None = None  # PEM: end-entity certificate first, then intermediates
    private_key: Path | None = None  # PEM, PKCS#8
    algorithm: Literal["es256", "ps256"] = "es256"
    tsa_url: str | None = None


class QuotaSettings(_Section):
    """What one tenant may have at once; a create past it answers 409 ``quota-exceeded``."""

    #: streams on air (live or paused): each is a worker process with its CPU
    live_streams: int = Field(default=5, ge=0)
    products: int = Field(default=20_000, ge=0)
    schedules: int = Field(default=100, ge=0)
    #: keys not revoked
    keys: int = Field(default=200, ge=0)


class SecretsSettings(_Section):
    """The server key that encrypts stream keys at rest (see ``control/secretbox.py``).

    ``server_key`` (a Fernet key: ``python -c 'from cryptography.fernet import Fernet;
    print(Fernet.generate_key().decode())'``) wins over ``server_key_file``, which is created
    on first start when missing (default: ``server.key`` beside a SQLite database, else
    ``./var/server.key``). To rotate: new key in ``server_key``, the old one in
    ``previous_keys``, restart (stream keys are re-encrypted), then drop the old one."""

    server_key: SecretStr = SecretStr("")
    server_key_file: Path | None = None
    previous_keys: list[SecretStr] = Field(default_factory=list)


class WebhookSettings(_Section):
    """Alerts to people: how stream events are delivered to tenants' webhooks."""

    #: one delivery attempt waits this long for the receiver's answer
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    #: attempts before a delivery goes to the dead-letter list
    max_attempts: int = Field(default=6, ge=1, le=50)
    #: the wait after the first failed attempt; it doubles after each one, up to ``backoff_cap_s``
    backoff_start_s: float = Field(default=2.0, gt=0, le=3600)
    backoff_cap_s: float = Field(default=600.0, gt=0, le=86400)
    #: how often the sender looks for deliveries that fell due (a new event wakes it at once)
    poll_s: float = Field(default=1.0, gt=0, le=60)
    #: delivered deliveries are deleted after this long (dead letters stay until retried)
    keep_delivered_s: float = Field(default=7 * 86400, gt=0)


class LifecycleSettings(_Section):
    """What ``serve`` does on SIGTERM: ``/readyz`` answers 503 (draining) for
    ``drain_notice_s`` so load balancers stop sending, then every stream is stopped (its
    recording closed) without changing what should be on air, so the next start resumes it."""

    drain_notice_s: float = Field(default=0.0, ge=0, le=300)


class MonitorSettings(_Section):
    """On-air monitors: each reads the encoded output as a viewer would (``monitor/``) and
    reports a ``glitch`` event when its metric passes its threshold; remediation follows."""

    enabled: bool = True
    #: seconds after going on air before any monitor may report (the first sentence's wait)
    warmup_s: float = Field(default=6.0, ge=0)
    #: identical pictures (P-frames that change nothing) while talk is on air
    frozen_s: float = Field(default=2.0, gt=0)
    #: a P-frame no bigger than this (bytes) changed nothing a viewer can see (x264 makes 11-25
    #: bytes of an unchanged 720p picture; talking frames stay under it for 6 frames at most)
    frozen_packet_bytes: int = Field(default=40, ge=1)
    #: a decoded keyframe whose luma varies less than this (std) is black or flat
    flat_luma_std: float = Field(default=4.0, ge=0)
    #: silence (below ``silence_dbfs``) longer than this, outside mute/pause/slate
    silence_s: float = Field(default=1.5, gt=0)
    silence_dbfs: float = Field(default=-50.0, le=0)
    #: share of loud audio blocks that are noise (flat spectrum, no pitch) over a second
    noise_ratio: float = Field(default=0.6, gt=0, le=1)
    #: share of samples at full scale over a second
    clipping_ratio: float = Field(default=0.002, gt=0, le=1)
    #: audio minus video end time at the output, and the mouth/voice lag estimate
    drift_ms: float = Field(default=100.0, gt=0)
    #: a lip-sync estimate decodes every frame of ``lipsync_window_s`` every ``lipsync_every_s``
    lipsync_every_s: float = Field(default=60.0, gt=0)
    lipsync_window_s: float = Field(default=8.0, gt=0)
    #: the same sentence said this many times within ``repeat_window_s``
    repeat_count: int = Field(default=3, ge=2)
    repeat_window_s: float = Field(default=120.0, gt=0)
    #: a frame reaching the outputs this many seconds after its time on the wall clock
    late_s: float = Field(default=1.0, gt=0)
    #: a destination not connected, or a recording not growing, for this long
    output_stall_s: float = Field(default=6.0, gt=0)
    #: act on findings (re-voice, reset talk, restart the encoder or an output, fall back,
    #: slate, restart the worker); off: report only
    remediate: bool = True
    #: a finding still there this long after an action gets the next action on its ladder
    escalate_after_s: float = Field(default=8.0, gt=0)
    #: how long a slate put up by a monitor stays before the show comes back
    slate_hold_s: float = Field(default=20.0, gt=0)
    #: ``POST /v1/streams/{id}/faults`` injects glitches (tests, drills); never in production
    fault_injection: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AVATARCAST_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    database_url: str = "sqlite:///./var/avatarcast.db"
    recordings_dir: Path = Path("./recordings")
    api: ApiSettings = Field(default_factory=ApiSettings)
    stream: StreamDefaults = Field(default_factory=StreamDefaults)
    supervision: SupervisionSettings = Field(default_factory=SupervisionSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    chat_sources: ChatSourcesSettings = Field(default_factory=ChatSourcesSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)
    whep: WhepSettings = Field(default_factory=WhepSettings)
    hls: HlsSettings = Field(default_factory=HlsSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    c2pa: C2paSettings = Field(default_factory=C2paSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    monitors: MonitorSettings = Field(default_factory=MonitorSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_path())
        return (init_settings, env_settings, toml)


def _config_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={explicit!r}: no such file")
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None
