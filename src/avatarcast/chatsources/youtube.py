"""YouTube live chat: ``liveChatMessages.list`` polled, ``liveChatMessages.insert`` for replies.

Each poll asks for the page after the last ``nextPageToken`` and then waits the
``pollingIntervalMillis`` the response asked for (never less than ``min_poll_s``). A
``textMessageEvent`` becomes an ``Inbound`` (its ``id`` the de-duplication key, the author's
channel id the viewer); a ``messageDeletedEvent`` is passed to ``on_deleted`` so a message
still waiting is not answered. A 403 ``quotaExceeded`` (or ``rateLimitExceeded``) pauses
polling for ``quota_pause_s`` and shows as ``quota_exceeded`` in the source's health; other
errors retry with backoff. The OAuth token goes only in the Authorization header.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from avatarcast.chatsources.inbound import Backoff, Inbound, SourceHealth

__all__ = ["YoutubeOptions", "YoutubeSource"]

log = logging.getLogger(__name__)

_QUOTA = frozenset({"quotaExceeded", "rateLimitExceeded", "dailyLimitExceeded"})


@dataclass(frozen=True, slots=True, kw_only=True)
class YoutubeOptions:
    source_id: str
    live_chat_id: str
    token: str
    base_url: str = "https://www.googleapis.com"
    min_poll_s: float = 0.2
    quota_pause_s: float = 300.0


class YoutubeSource:
    def __init__(
        self,
        options: YoutubeOptions,
        deliver: Callable[[Inbound], object],
        *,
        client: httpx.AsyncClient,
        on_deleted: Callable[[str, str], object] = lambda source_id, message_id: None,
    ) -> None:
        self.options = options
        self._deliver = deliver
        self._on_deleted = on_deleted
        self._client = client
        self.health = SourceHealth(source_id=options.source_id, kind="youtube")
        self._page: str | None = None
        self._backoff = Backoff()

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
        try:
            response = await self._client.get(self._url, params=params, headers=self._auth)
        except httpx.HTTPError as e:
            return self._failed(f"{type(e).__name__}: {e}")
        if response.status_code != 200:
            reason = _reason(response)
            if response.status_code in (403, 429) and reason in _QUOTA:
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
            raise RuntimeError(
                f"liveChatMessages.insert: HTTP {response.status_code} {_reason(response)}"
            )
        self.health.sent += 1


def _reason(response: httpx.Response) -> str:
    try:
        errors = response.json()["error"]["errors"]
        return str(errors[0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        return response.reason_phrase or "error"
