"""YouTube live chat: ``liveChatMessages.list`` polled, ``liveChatMessages.insert`` for replies.

Each poll asks for the page after the last ``nextPageToken`` and then waits the
``pollingIntervalMillis`` the response asked for (never less than ``min_poll_s``). A
``textMessageEvent`` becomes an ``Inbound`` (its ``id`` the de-duplication key, the author's
channel id the viewer); a ``messageDeletedEvent`` is passed to ``on_deleted`` so a message
still waiting is not answered. A 403 ``quotaExceeded`` (or ``rateLimitExceeded``) pauses
polling for ``quota_pause_s`` and shows as ``quota_exceeded`` in the source's health; other
errors retry with backoff. The OAuth token goes only in the Authorization header.

Quota: each call is charged to the source's :class:`~avatarcast.chatsources.quota.QuotaMeter`
as YouTube charges it (list 5 units, insert 20; see ``quota``). Written answers stop (the
intake gives them ``overflow`` with reason ``quota``) while reading still has its reserve;
when the budget is spent, or YouTube answers 403 ``quotaExceeded``, polling waits until the
reset at midnight Pacific time and the health says until when. ``rateLimitExceeded`` (too
fast, not the day's quota) pauses ``quota_pause_s``. Each charge is handed to ``before_call``
(the registry saves it, with the page token and the stream's account) before the call is
made, and :meth:`YoutubeSource.restore` carries a restarted source on from there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from avatarcast.chatsources.inbound import Backoff, Inbound, ReplyRefused, SourceHealth
from avatarcast.chatsources.quota import INSERT_COST, LIST_COST, QuotaMeter, next_reset

__all__ = ["YoutubeOptions", "YoutubeSource"]

log = logging.getLogger(__name__)

_DAILY = frozenset({"quotaExceeded", "dailyLimitExceeded"})
_RATE = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


@dataclass(frozen=True, slots=True, kw_only=True)
class YoutubeOptions:
    source_id: str
    live_chat_id: str
    token: str
    base_url: str = "https://www.googleapis.com"
    min_poll_s: float = 0.2
    quota_pause_s: float = 300.0
    #: units a day this source may spend (YouTube's default project quota is 10,000)
    daily_quota: int = 10_000
    #: units kept for reading the chat: written answers stop before they would use them
    read_reserve: int = 500


class YoutubeSource:
    def __init__(
        self,
        options: YoutubeOptions,
        deliver: Callable[[Inbound], object],
        *,
        client: httpx.AsyncClient,
        on_deleted: Callable[[str, str], object] = lambda source_id, message_id: None,
        before_call: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.options = options
        self._before_call = before_call
        self._deliver = deliver
        self._on_deleted = on_deleted
        self._client = client
        self.health = SourceHealth(source_id=options.source_id, kind="youtube")
        self._page: str | None = None
        self._backoff = Backoff()
        self.quota = QuotaMeter(budget=options.daily_quota, read_reserve=options.read_reserve)
        #: whether :meth:`restore` ran: until then the state is not worth saving
        self.restored = False
        self._show_quota()

    def state(self) -> dict[str, Any]:
        """What outlives a restart: the quota day, units and calls, and the next page token."""
        day, used, calls = self.quota.as_state()
        return {
            "quota_day": day,
            "quota_used": used,
            "quota_calls": calls,
            "cursor": self._page,
            "cursor_of": self.options.live_chat_id,
        }

    def restore(self, state: dict[str, Any] | None) -> None:
        """Carry on from a saved :meth:`state` (``None``: nothing was saved)."""
        if state is not None:
            self.quota.restore(state["quota_day"], state["quota_used"], state["quota_calls"])
            if state["cursor_of"] == self.options.live_chat_id:
                self._page = state["cursor"] or self._page
        self.restored = True
        self._show_quota()

    async def _charge(self, method: str, units: int) -> None:
        """Charge a call before it is made, and have the charge saved first (``before_call``):
        YouTube counts a request that a crash interrupts, so must we."""
        self.quota.charge(method, units)
        self._show_quota()
        if self._before_call is not None:
            try:
                await self._before_call()
            except Exception as e:  # the database away: the call goes on, counted in memory
                log.warning(
                    "source %s: the quota charge was not saved: %s", self.health.source_id, e
                )

    def _show_quota(self) -> None:
        self.health.extra["quota"] = self.quota.as_dict()

    @property
    def _url(self) -> str:
        return self.options.base_url.rstrip("/") + "/youtube/v3/liveChat/messages"

    @property
    def _auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.options.token}"}

    async def run(self) -> None:
        while True:  # noqa: ASYNC110 - the server says how long to wait before each poll
            await asyncio.sleep(await self.poll_once())

    async def poll_once(self) -> float:
        """One ``list`` call; returns how long to wait before the next."""
        params = {"liveChatId": self.options.live_chat_id, "part": "snippet,authorDetails"}
        if self._page:
            params["pageToken"] = self._page
        if not self.quota.can_read():
            return self._until_reset(f"the daily budget of {self.quota.budget} units is spent")
        await self._charge("liveChatMessages.list", LIST_COST)  # failed calls are charged too
        try:
            response = await self._client.get(self._url, params=params, headers=self._auth)
        except httpx.HTTPError as e:
            return self._failed(f"{type(e).__name__}: {e}")
        if response.status_code != 200:
            reason = _reason(response)
            if response.status_code in (403, 429) and reason in _DAILY:
                self.quota.spent()
                return self._until_reset(f"{reason}: YouTube says the day's quota is spent")
            if response.status_code in (403, 429) and reason in _RATE:
                self.health.state, self.health.last_error = "quota_exceeded", reason
                self.health.retry_in_s = self.options.quota_pause_s
                return self.options.quota_pause_s
            return self._failed(f"HTTP {response.status_code}: {reason}")
        body = response.json()
        if self.health.state != "connected":
            self.health.connects += 1
        self.health.state, self.health.last_error, self.health.retry_in_s = "connected", None, None
        self._backoff.reset()
        self._page = body.get("nextPageToken") or self._page
        for item in body.get("items") or ():
            self._item(item)
        wait = float(body.get("pollingIntervalMillis") or 1000) / 1000
        self.health.extra["polling_interval_s"] = wait
        return max(self.options.min_poll_s, wait)

    def _until_reset(self, why: str) -> float:
        """Wait for YouTube's reset (midnight Pacific) and say so in the health."""
        wait = self.quota.seconds_to_reset()
        self._show_quota()
        resets_at = next_reset(self.quota.clock()).isoformat()
        self.health.state = "quota_exceeded"
        self.health.last_error = f"{why}; polling resumes at {resets_at} (midnight Pacific)"
        self.health.retry_in_s = round(wait, 1)
        return wait

    def _failed(self, error: str) -> float:
        delay = self._backoff.next()
        self.health.state, self.health.last_error = "reconnecting", error[:300]
        self.health.retry_in_s = round(delay, 2)
        return delay

    def _item(self, item: dict[str, Any]) -> None:
        snippet = item.get("snippet") or {}
        kind = snippet.get("type")
        if kind == "messageDeletedEvent":
            deleted = (snippet.get("messageDeletedDetails") or {}).get("deletedMessageId")
            if deleted:
                self._on_deleted(self.options.source_id, str(deleted))
            return
        if kind != "textMessageEvent":
            return
        author = item.get("authorDetails") or {}
        text = (snippet.get("textMessageDetails") or {}).get("messageText") or snippet.get(
            "displayMessage", ""
        )
        self.health.received += 1
        self._deliver(
            Inbound(
                source_id=self.options.source_id,
                platform="youtube",
                message_id=str(item.get("id", "")),
                viewer_id=str(author.get("channelId") or snippet.get("authorChannelId") or ""),
                name=str(author.get("displayName") or ""),
                text=str(text),
                reply_to=self.options.live_chat_id,
            )
        )

    async def reply(self, to: str, text: str) -> None:
        if not self.quota.can_write():
            q = self.quota
            raise ReplyRefused(
                f"quota: {q.used} of {q.budget} units used today; the last {q.read_reserve} "
                "are kept for reading the chat"
            )
        await self._charge("liveChatMessages.insert", INSERT_COST)
        body = {
            "snippet": {
                "liveChatId": to or self.options.live_chat_id,
                "type": "textMessageEvent",
                "textMessageDetails": {"messageText": text[:200]},
            }
        }
        response = await self._client.post(
            self._url, params={"part": "snippet"}, json=body, headers=self._auth
        )
        if response.status_code != 200:
            reason = _reason(response)
            if response.status_code in (403, 429) and reason in _DAILY:
                self.quota.spent()
                self._show_quota()
                raise ReplyRefused(f"quota: YouTube answered {reason}")
            raise RuntimeError(f"liveChatMessages.insert: HTTP {response.status_code} {reason}")
        self.health.sent += 1


def _reason(response: httpx.Response) -> str:
    try:
        errors = response.json()["error"]["errors"]
        return str(errors[0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        return response.reason_phrase or "error"
