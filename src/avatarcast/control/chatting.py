"""Platform chat sources per stream, run by the control plane beside (never in) the workers.

:func:`lifespan` owns a :class:`ChatRegistry` for the app's life. Each stream with a source
gets one :class:`~avatarcast.chatsources.ChatIntake`; each source one task (IRC connection,
YouTube poller; a webhook source has no task, its posts come through the API). The intake
hands its top question groups to the stream's worker as ``chat`` commands (spoken by the desk
there) and writes the rest back to the platform chat itself.

Sources are stored (``control.chat_store``, credentials sealed with the server key, never
logged or returned); a starting server opens again the sources of every stream on air, and
keeps checking every ``chat_sources.reopen_every_s`` for streams that went on air since.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from avatarcast.catalog.model import Product
from avatarcast.chat.moderation import Moderator
from avatarcast.chatsources import ChatIntake, Inbound, IntakeOptions
from avatarcast.chatsources.inbound import SourceHealth
from avatarcast.chatsources.irc import IrcOptions, IrcSource
from avatarcast.chatsources.ledger import Account
from avatarcast.chatsources.webhook import WebhookVerifier, reply_sender
from avatarcast.chatsources.written import WrittenAnswers
from avatarcast.chatsources.youtube import YoutubeOptions, YoutubeSource
from avatarcast.control.chat_open import Source, StreamChat
from avatarcast.control.chat_state import ChatSaver, load_account, load_source_state, prune_posts
from avatarcast.control.chat_store import (
    StoredSource,
    live_sources,
    reseal_secrets,
    resolve_ca,
)
from avatarcast.control.context import AppContext
from avatarcast.control.manager import selected_products
from avatarcast.control.problems import ProblemError
from avatarcast.db.models_streams import StreamRow
from avatarcast.runner.base import StreamRunner
from avatarcast.script.guardrails import default_lexicon_dir

__all__ = [
    "EXTRAS_KEY",
    "ChatRegistry",
    "Source",
    "StreamChat",
    "drop_stream_chat",
    "lifespan",
    "registry_of",
]

log = logging.getLogger(__name__)
EXTRAS_KEY = "chat_sources"


class ChatRegistry:
    """The chat of every stream that has a source; see the module docstring."""

    def __init__(self, ctx: AppContext, runner: StreamRunner, tg: asyncio.TaskGroup) -> None:
        self.ctx = ctx
        self.runner = runner
        self._tg = tg
        self.streams: dict[str, StreamChat] = {}
        self.webhooks: dict[str, tuple[StreamChat, Source]] = {}
        self.client = httpx.AsyncClient(timeout=10.0, trust_env=False)
        self._moderator = Moderator(lexicon_dir=default_lexicon_dir())
        self._unreadable: set[str] = set()
        self.saver = ChatSaver(ctx, self.states)

    async def open_stream(
        self, stream_id: str, tenant_id: str, lang: str, products: list[Product]
    ) -> StreamChat:
        """The stream's chat, opened with the account saved before a restart if any."""
        account = None
        if stream_id not in self.streams:
            state = await self.ctx.read(partial(load_account, stream_id=stream_id))
            if state is not None:
                try:
                    account = Account.restored(state)
                except ValueError as e:
                    log.error("stream %s: %s; its chat account starts from zero", stream_id, e)
        return self.stream(stream_id, tenant_id, lang, products, account=account)

    def stream(
        self,
        stream_id: str,
        tenant_id: str,
        lang: str,
        products: list[Product],
        *,
        account: Account | None = None,
    ) -> StreamChat:
        chat = self.streams.get(stream_id)
        if chat is not None:
            chat.intake.written.set_products(products)
            return chat
        settings = self.ctx.settings.chat_sources
        options = IntakeOptions(
            lang=lang,
            hold_s=settings.hold_s,
            spoken_every_s=settings.spoken_every_s,
            max_age_s=settings.max_age_s,
            retention_s=settings.retention_s,
        )

        async def spoken(messages: list[dict[str, str]]) -> list[dict[str, Any]]:
            result = await self.runner.request(stream_id, {"cmd": "chat", "messages": messages})
            return list(result or ())

        def on_air() -> str | None:
            status = self.runner.status(stream_id)
            health = status.health if status is not None else None
            return health.product_id if health is not None else None

        intake = ChatIntake(
            options=options,
            moderator=self._moderator,
            written=WrittenAnswers(products=products, lang=lang),
            spoken=spoken,
            on_air_product=on_air,
            account=account,
            before_send=self.saver.save,
        )
        task = self._tg.create_task(intake.run(), name=f"chat-intake-{stream_id}")
        chat = self.streams[stream_id] = StreamChat(
            stream_id=stream_id, tenant_id=tenant_id, intake=intake, task=task
        )
        return chat

    def add(self, chat: StreamChat, config: dict[str, Any], *, source_id: str) -> Source:
        """Start a source from its validated config (``token`` included, opened here only)."""
        config = dict(config)
        kind = config["kind"]
        token = str(config.pop("token", "") or "")
        public = {k: v for k, v in config.items() if v is not None}
        public["id"] = source_id
        public["has_token"] = bool(token)
        deliver = chat.intake.offer
        per_30s = int(config.get("rate_per_30s") or 20)
        if kind == "twitch":
            irc = IrcSource(
                IrcOptions(
                    source_id=source_id,
                    server=config["server"],
                    channel=config["channel"],
                    username=config["username"],
                    token=token,
                    ca_file=self._ca_path(config.get("ca_file")),
                ),
                deliver,
                on_deleted=chat.intake.retract,
            )
            source = Source(id=source_id, kind=kind, public=public, health=irc.health)
            chat.intake.add_replier(source_id, irc.reply, per_30s=per_30s, held=True)
            run: Callable[[], Awaitable[None]] | None = irc.run
        elif kind == "youtube":
            yt = YoutubeSource(
                YoutubeOptions(
                    source_id=source_id,
                    live_chat_id=config["live_chat_id"],
                    token=token,
                    base_url=config.get("base_url") or "https://www.googleapis.com",
                    quota_pause_s=float(config.get("quota_pause_s") or 300.0),
                    daily_quota=int(config.get("daily_quota") or 10_000),
                    read_reserve=int(config.get("read_reserve", 500)),
                ),
                deliver,
                client=self.client,
                on_deleted=chat.intake.retract,
                before_call=self.saver.save,
            )
            source = Source(id=source_id, kind=kind, public=public, health=yt.health, youtube=yt)
            chat.intake.add_replier(source_id, yt.reply, per_30s=per_30s, held=True)
            run = yt.run
        else:
            health = SourceHealth(source_id=source_id, kind="webhook", state="connected")
            public["url"] = f"/v1/chat-hooks/{source_id}"
            window = self.ctx.settings.chat_sources.webhook_window_s
            source = Source(
                id=source_id,
                kind=kind,
                public=public,
                health=health,
                verifier=WebhookVerifier(token, window_s=window),
            )
            if config.get("reply_url"):
                reply = reply_sender(self.client, config["reply_url"], token)
                chat.intake.add_replier(source_id, reply, per_30s=per_30s, held=True)  # type: ignore[arg-type]
            self.webhooks[source_id] = (chat, source)
            run = None
        chat.sources[source_id] = source
        source.task = self._tg.create_task(
            self._run(chat, source, run), name=f"chat-source-{source_id}"
        )
        return source

    async def _run(
        self, chat: StreamChat, source: Source, run: Callable[[], Awaitable[None]] | None
    ) -> None:
        """Carry the source on from where it was before a restart or an edit (its platform
        limit; a YouTube source's quota units of the day and page token), then run it."""
        load = partial(load_source_state, source_id=source.id)
        while True:
            try:
                state = await self.ctx.read(load)
                break
            except Exception:  # the database may be away for a moment: no poll, no send
                log.exception("chat source %s: its saved state could not be read", source.id)
                await asyncio.sleep(self.ctx.settings.chat_sources.account_save_s)
        if source.youtube is not None:
            source.youtube.restore(state)
        chat.intake.restore_sending(source.id, state)
        if run is not None:
            await run()

    def _ca_path(self, name: str | None) -> str | None:
        """The CA file in ``ca_dir``; a stored name no longer valid there fails the TLS
        handshake (the source's health says so) rather than the server's start."""
        if not name:
            return None
        try:
            return str(resolve_ca(self.ctx.settings.chat_sources.ca_dir, name))
        except ProblemError:
            return str(Path("/nonexistent-ca-outside-ca_dir") / Path(name).name)

    async def reopen(self) -> int:
        """Open the stored sources of streams on air that are not open yet; how many."""
        stored = await run_in_threadpool(self._load_live)
        opened = 0
        for src in stored:
            chat = self.streams.get(src.stream_id)
            if chat is not None and src.id in chat.sources:
                continue
            try:
                facts = partial(_stream_facts, stream_id=src.stream_id)
                lang, products = await self.ctx.read(facts)
                chat = await self.open_stream(src.stream_id, src.tenant_id, lang, products)
                self.add(chat, {**src.config, "token": src.token}, source_id=src.id)
            except Exception:
                log.exception("chat source %s of stream %s did not open", src.id, src.stream_id)
                continue
            opened += 1
        if opened:
            log.info("opened %d stored chat sources", opened)
        return opened

    def _load_live(self) -> list[StoredSource]:
        with self.ctx.sessions() as session:
            stored, unreadable = live_sources(session, self.ctx.secrets)
        for source_id in set(unreadable) - self._unreadable:
            log.error("chat source %s: no server key opens its credential; add it again", source_id)
        self._unreadable.update(unreadable)
        return stored

    def remove(self, chat: StreamChat, source_id: str) -> None:
        source = chat.sources.pop(source_id, None)
        if source is None:
            return
        if source.task is not None:
            source.task.cancel()
        self.webhooks.pop(source_id, None)
        chat.intake.remove_replier(source_id)

    def drop_stream(self, stream_id: str) -> None:
        """The stream was deleted: its sources stop and its chat is forgotten."""
        chat = self.streams.pop(stream_id, None)
        if chat is None:
            return
        for source_id in list(chat.sources):
            self.remove(chat, source_id)
        chat.task.cancel()

    def states(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Every stream's account and every restored source's state, as of now."""
        accounts, sources = {}, {}
        for sid, chat in self.streams.items():
            accounts[sid] = chat.intake.account.as_state()
            for source in chat.sources.values():
                state: dict[str, Any] = {}
                yt = source.youtube
                if yt is not None and yt.restored:
                    state.update(yt.state())
                state.update(chat.intake.sending_state(source.id) or {})
                if state:
                    sources[source.id] = state
        return accounts, sources

    async def take_post(
        self, source: Source, chat: StreamChat, messages: list[Inbound], signature: str
    ) -> list[Any]:
        """A verified webhook post: its messages offered, then saved with their counts and
        its signature before this returns (a post answered 202 survives a crash)."""
        fates = self.deliver_webhook(source, chat, messages)
        await self.saver.save(signature=(source.id, signature))
        return fates

    def deliver_webhook(
        self, source: Source, chat: StreamChat, messages: list[Inbound]
    ) -> list[Any]:
        source.health.received += len(messages)
        return [chat.intake.offer(m) for m in messages]

    async def aclose(self) -> None:
        for chat in self.streams.values():
            for source in chat.sources.values():
                if source.task is not None:
                    source.task.cancel()
            chat.task.cancel()
        await self.client.aclose()


@asynccontextmanager
async def lifespan(ctx: AppContext) -> AsyncIterator[None]:
    from avatarcast.control.streaming import manager_of

    def reseal() -> None:
        with ctx.sessions() as session:
            reseal_secrets(session, ctx.secrets)

    await run_in_threadpool(reseal)
    async with asyncio.TaskGroup() as tg:
        registry = ChatRegistry(ctx, manager_of(ctx).runner, tg)
        ctx.extras[EXTRAS_KEY] = registry
        reopening = tg.create_task(_keep_open(registry), name="chat-sources-reopen")
        saving = tg.create_task(_keep_saved(registry), name="chat-accounts-save")
        try:
            yield
        finally:
            ctx.extras.pop(EXTRAS_KEY, None)
            reopening.cancel()
            saving.cancel()
            try:
                await registry.saver.save()
            except Exception:
                log.exception("chat accounts could not be saved at shutdown")
            await registry.aclose()


async def _keep_open(registry: ChatRegistry) -> None:
    every = registry.ctx.settings.chat_sources.reopen_every_s
    while True:
        try:
            await registry.reopen()
        except Exception:  # the database may be away for a moment; the next round retries
            log.exception("stored chat sources could not be read")
        await asyncio.sleep(every)


async def _keep_saved(registry: ChatRegistry) -> None:
    every = registry.ctx.settings.chat_sources.account_save_s
    rounds = 0
    while True:
        await asyncio.sleep(every)
        try:
            await registry.saver.save()
            rounds += 1
            if rounds % 60 == 0:
                window = registry.ctx.settings.chat_sources.webhook_window_s
                await prune_posts(registry.ctx, older_than_s=2 * window)
        except Exception:  # the database may be away for a moment; the next round retries
            log.exception("chat accounts could not be saved")


def _stream_facts(session: Session, *, stream_id: str) -> tuple[str, list[Product]]:
    row = session.get(StreamRow, stream_id)
    if row is None:
        raise LookupError(f"stream {stream_id!r} is gone")
    return row.lang, selected_products(session, row.tenant_id, row.product_ids)


async def drop_stream_chat(ctx: AppContext, stream_id: str) -> None:
    """For the stream routes: a deleted stream's chat sources stop (on the loop that owns them)."""
    registry: ChatRegistry | None = ctx.extras.get(EXTRAS_KEY)
    if registry is not None:
        registry.drop_stream(stream_id)


def registry_of(ctx: AppContext) -> ChatRegistry:
    registry: ChatRegistry | None = ctx.extras.get(EXTRAS_KEY)
    if registry is None:
        raise ProblemError(503, "chat sources are not running", kind="not-ready")
    return registry
