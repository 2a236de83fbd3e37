"""The stream page's chat sources panel in Debian's chromium against a real ``avatarcast serve``.

An operator adds a webhook source and a Twitch source through the form (the token is
write-only: it never comes back into the page), sees each source's health in words, a CA file
outside the server's CA folder refused, the chat account add up after signed posts, and
removes a source.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from rtmp_server import free_port
from served import CHROMIUM, CHROMIUM_ARGS, FRYER, Served, serve

SECRET = "console-hook-secret-73a1"
IRC_TOKEN = "oauth-console-token-9be4"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _post(served: Served, source_id: str, messages: list[dict[str, str]]) -> None:
    body = json.dumps({"messages": messages}).encode()
    stamp = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-avatarcast-timestamp": stamp,
        "x-avatarcast-signature": f"sha256={mac}",
    }
    with served.client() as c:
        r = c.post(f"/v1/chat-hooks/{source_id}", content=body, headers=headers)
    assert r.status_code == 202, r.text


def test_add_watch_and_remove_chat_sources_from_the_stream_page(
    browser: Any, tmp_path: Path
) -> None:
    (tmp_path / "ca").mkdir()
    env = {"AVATARCAST_CHAT_SOURCES__CA_DIR": str(tmp_path / "ca")}
    with serve(tmp_path / "serve", env) as served:
        op = served.auth("operator")
        with served.client() as c:
            assert c.post("/v1/products", json=FRYER, headers=op).status_code in (200, 201)
            sid = c.post("/v1/streams", json={"name": "chatty"}, headers=op).json()["id"]
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(served.url + "/console/sign-in")
        page.get_by_label("API key").fill(served.keys["operator"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/**", wait_until="domcontentloaded")
        page.goto(f"{served.url}/console/streams/{sid}")
        panel = page.locator(f"#chat-sources-{sid}")
        expect(panel).to_contain_text("No chat source", timeout=10_000)

        page.get_by_label("Platform").select_option("webhook")
        page.get_by_label("Token or secret (write-only)").fill(SECRET)
        page.get_by_role("button", name="Add chat source").click()
        expect(page.locator("#status")).to_contain_text("Webhook chat source", timeout=10_000)
        first = panel.locator('li[data-source^="cs_"]')
        expect(first).to_contain_text("Ready for signed posts; 0 received, 0 sent.", timeout=5000)
        expect(page.get_by_label("Token or secret (write-only)")).to_have_value("")
        hook_id = first.get_attribute("data-source")
        assert hook_id
        hook = panel.locator(f'li[data-source="{hook_id}"]')

        # a CA file outside the server's CA folder: refused, nothing added
        page.get_by_label("Platform").select_option("twitch")
        page.get_by_label("Token or secret (write-only)").fill(IRC_TOKEN)
        page.get_by_label("Twitch: IRC server").fill(f"irc://127.0.0.1:{free_port()}")
        page.get_by_label("Twitch: channel").fill("#shop")
        page.get_by_label("Twitch: bot user name").fill("avatarbot")
        page.get_by_label("Twitch: private CA file (in the server's CA folder)").fill("/etc/hosts")
        page.get_by_role("button", name="Add chat source").click()
        expect(page.locator("#alerts")).to_contain_text(
            "ca_file: ca_file must name a readable file in the server's CA folder", timeout=5000
        )
        expect(panel.locator("li[data-source]")).to_have_count(1)

        # without it: added; nothing listens on that port, so it says it is reconnecting
        page.get_by_label("Twitch: private CA file (in the server's CA folder)").fill("")
        page.get_by_role("button", name="Add chat source").click()
        expect(page.locator("#status")).to_contain_text("Twitch chat source", timeout=10_000)
        twitch = panel.locator('li[data-source]:has-text("Twitch")')
        expect(twitch).to_contain_text("#shop on irc://127.0.0.1", timeout=5000)
        expect(twitch).to_contain_text("Disconnected, reconnecting", timeout=15_000)

        _post(
            served,
            hook_id,
            [
                {"id": "m1", "viewer_id": "v1", "name": "Ana", "text": "How much is the fryer?"},
                {"id": "m2", "viewer_id": "v2", "name": "Bo", "text": "hello everyone"},
                {"id": "m1", "viewer_id": "v1", "name": "Ana", "text": "How much is the fryer?"},
            ],
        )
        expect(panel.locator('[data-account="messages_in"]')).to_have_text("2", timeout=15_000)
        expect(panel.locator(".account-sum")).to_contain_text(
            "every message accounted for", timeout=15_000
        )
        expect(hook).to_contain_text("3 received", timeout=10_000)  # the duplicate too
        expect(panel.locator(".account-sum")).to_contain_text("1 duplicate not taken in")
        parts = [
            int(panel.locator(f'[data-account="{k}"]').inner_text())
            for k in ("answered_spoken", "answered_written", "merged", "blocked", "overflow")
        ]
        rest = [
            int(panel.locator(f'[data-account="{k}"]').inner_text()) for k in ("ignored", "pending")
        ]
        assert sum(parts) + sum(rest) == 2, (parts, rest)

        page.screenshot(path=str(tmp_path / "chat-sources.png"), full_page=True)
        from axe_playwright_python.sync_playwright import Axe

        found = Axe().run(page).response
        assert found["testEngine"]["name"] == "axe-core", found
        bad = [v["id"] for v in found["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, bad
        html = page.content()
        assert SECRET not in html and IRC_TOKEN not in html

        # change a source: disable it with its button, then a new channel through the form
        twitch_id = twitch.get_attribute("data-source")
        page.get_by_role("button", name=f"Disable Twitch source {twitch_id}").click()
        expect(page.locator("#status")).to_contain_text(
            f"Chat source {twitch_id} changed: enabled", timeout=10_000
        )
        expect(twitch).to_contain_text("Disabled: kept, but not connected", timeout=10_000)
        page.get_by_label("Source id").fill(str(twitch_id))
        page.get_by_label("New Twitch channel").fill("#sale")
        page.get_by_role("button", name="Change chat source").click()
        expect(page.locator("#status")).to_contain_text(
            f"Chat source {twitch_id} changed: channel", timeout=10_000
        )
        expect(twitch).to_contain_text("#sale on irc://127.0.0.1", timeout=10_000)
        expect(page.get_by_label("New Twitch channel")).to_have_value("")
        with served.client() as c:
            audit = c.get("/v1/audit", params={"stream_id": sid}, headers=op).json()["items"]
        changes = [e["detail"]["changed"] for e in audit if e["kind"] == "chat_source.update"]
        assert {"channel": {"from": "#shop", "to": "#sale"}} in changes, changes
        assert {"enabled": {"from": True, "to": False}} in changes, changes

        page.get_by_role("button", name=f"Remove Webhook source {hook_id}").click()
        expect(page.locator("#status")).to_contain_text(f"Chat source {hook_id} removed.")
        expect(panel.locator("li[data-source]")).to_have_count(1, timeout=5000)
        with served.client() as c:
            listed = c.get(f"/v1/streams/{sid}/chat-sources", headers=op).json()
        assert [s["kind"] for s in listed] == ["twitch"]
        ctx.close()
        out = served.output()
    assert SECRET not in out and IRC_TOKEN not in out
