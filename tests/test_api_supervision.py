"""A human supervisor on a live stream, chat and the transcript, through the API.

On SQLite and PostgreSQL, with a real worker process: duty and heartbeats, safe mode when
they lapse (a 3 s policy), on-air actions, chat over HTTP and a WebSocket, and the audit
chain at the end. The heartbeat watch's own timing runs on a fake clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.orm import Session

from avatarcast.compliance.audit import AuditLog
from avatarcast.control.supervision import SupervisionWatch

if TYPE_CHECKING:
    from conftest_api import Api

pytest_plugins = ("conftest_api",)
#: its apps start streams: workers forked from a zygote, as deployed (conftest_api)
WORKER_ZYGOTE = True

FRYER = {"id": "AF-1", "title": "Air fryer", "brand": "Acme", "price": "89.99"}
KETTLE = {"id": "KT-2", "title": "Kettle", "brand": "Acme", "price": "29.99"}
POLICY_S = 3.0
#: a worker's start (its imports, the first second on air): a wait, not a check; 25 s ran out
#: twice at load average 20 on the shared 2-core machine
START_S = 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_heartbeat_lapse_safe_mode_then_stop_on_a_fake_clock() -> None:
    clock = FakeClock()
    watch = SupervisionWatch(timeout_s=60, stop_after_s=300, clock=clock)
    watch.arm("s1")
    clock.now += 59.9
    assert watch.tick() == []
    clock.now += 0.5  # 60.4 s silent: safe mode now, reported once
    [safe] = watch.tick()
    assert (safe.stream_id, safe.kind) == ("s1", "safe_mode_entered") and safe.silent_s < 62
    assert watch.in_safe_mode("s1") and watch.tick() == []
    clock.now += 10
    left = watch.beat("s1")  # a heartbeat in safe mode resumes the stream
    assert left is not None and left.kind == "safe_mode_left"
    assert not watch.in_safe_mode("s1") and watch.beat("s1") is None
    clock.now += 61
    assert [a.kind for a in watch.tick()] == ["safe_mode_entered"]
    clock.now += 299
    assert watch.tick() == []
    clock.now += 1.5
    assert [a.kind for a in watch.tick()] == ["stop"]
    clock.now += 1000
    assert watch.tick() == [] and watch.beat("s1") is None  # stopped: nothing more
    watch.disarm("s1")
    assert not watch.watching("s1")


def test_supervisors_keys_duty_and_labels(api: Api) -> None:
    c, op = api.client, api.auth("operator")
    assert c.post("/v1/products", json=FRYER, headers=op).status_code == 201
    bad_label = {"name": "n", "label": {"enabled": False}}
    api.problem(c.post("/v1/streams", json=bad_label, headers=op), 422)
    label = {"text": "AI-generated presenter", "position": "bottom-right"}
    made = c.post("/v1/streams", json={"name": "night", "label": label}, headers=op).json()
    sid = made["id"]
    assert made["label"] == {**label, "lang": None} and made["supervisor_on_duty"] is None
    api.problem(c.patch(f"/v1/streams/{sid}", json={"label": {"off": True}}, headers=op), 422)

    r = api.problem(c.post(f"/v1/streams/{sid}/start", headers=op), 409)
    assert r["type"].endswith("/no-supervisor") and "supervisor" in r["detail"]

    person = {"full_name": "Ana Lopez", "contact": "ana@example.com", "reference": "P-981"}
    api.problem(c.post("/v1/supervisors", json=person, headers=api.auth("supervisor")), 403)
    sup_id, sup = api.supervisor("Ana Lopez")
    listed = c.get("/v1/supervisors", headers=api.auth("supervisor")).json()
    assert [(s["id"], s["full_name"], s["reference"]) for s in listed] == [
        (sup_id, "Ana Lopez", "ID-0042")
    ]
    assert c.get("/v1/supervisors", headers=api.other).json() == []
    link = {"name": "k", "role": "backend", "supervisor_id": sup_id}
    api.problem(c.post("/v1/keys", json=link, headers=op), 422)
    other_link = {"name": "k", "role": "supervisor", "supervisor_id": sup_id}
    api.problem(c.post("/v1/keys", json=other_link, headers=api.other), 404)

    duty = f"/v1/streams/{sid}/supervisor/duty"
    beat = f"/v1/streams/{sid}/supervisor/heartbeat"
    # an unlinked supervisor key, or someone else's id, cannot go on duty
    api.problem(c.post(duty, json={"supervisor_id": sup_id}, headers=api.auth("supervisor")), 403)
    other_id, _ = api.supervisor("Bo Chen")
    api.problem(c.post(duty, json={"supervisor_id": other_id}, headers=sup), 403)
    api.problem(c.post(beat, headers=sup), 409)
    on = c.post(duty, json={"supervisor_id": sup_id}, headers=sup)
    assert on.status_code == 200 and on.json()["supervisor_id"] == sup_id
    assert c.post(beat, headers=sup).json()["safe_mode"] is False
    assert c.get(f"/v1/streams/{sid}", headers=op).json()["supervisor_on_duty"] == sup_id
    assert c.delete(duty, headers=sup).json()["supervisor_id"] is None
    api.problem(c.post(f"/v1/streams/{sid}/start", headers=op), 409)
    kinds = [e["kind"] for e in audit_items(api, sid)]
    assert kinds == ["stream_created", "supervisor_on_duty", "supervisor_off_duty"]

    # product changes land in the tenant's own chain, a price change with both prices
    assert c.patch("/v1/products/AF-1", json={"price": "79.99"}, headers=op).status_code == 200
    tenant = [e for e in audit_items(api, "") if e["kind"].startswith("product_")]
    assert [e["kind"] for e in tenant] == ["product_created", "product_updated"]
    assert tenant[1]["detail"] == {
        "key_id": tenant[1]["detail"]["key_id"],
        "role": "operator",
        "product_id": "AF-1",
        "price": "79.99",
        "old_price": "89.99",
    }


def audit_items(api: Api, stream_id: str) -> list[dict[str, Any]]:
    r = api.client.get(
        "/v1/audit", params={"stream_id": stream_id, "limit": 500}, headers=api.auth()
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def transcript(api: Api, stream_id: str, source: str | None) -> list[dict[str, Any]]:
    """The stream's transcript lines from ``source``, or all of them for None."""
    params: dict[str, Any] = {"limit": 500} | ({"source": source} if source else {})
    r = api.client.get(
        f"/v1/streams/{stream_id}/transcript", params=params, headers=api.auth("backend")
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


class Live:
    """A live stream with a supervisor on duty; ``until`` polls and keeps the heartbeat up."""

    def __init__(self, api: Api, **stream: Any) -> None:
        self.api, c, op = api, api.client, api.auth("operator")
        for product in (FRYER, KETTLE):
            assert c.post("/v1/products", json=product, headers=op).status_code == 201
        body = {"name": "live", **stream}
        self.sid = c.post("/v1/streams", json=body, headers=op).json()["id"]
        self.supervisor_id, self.sup = api.on_duty(self.sid)
        assert c.post(f"/v1/streams/{self.sid}/start", headers=op).status_code == 200

    def beat(self) -> dict[str, Any]:
        r = self.api.client.post(f"/v1/streams/{self.sid}/supervisor/heartbeat", headers=self.sup)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def status(self) -> dict[str, Any]:
        body = self.api.client.get(f"/v1/streams/{self.sid}", headers=self.sup).json()
        status: dict[str, Any] = body["status"]
        return status

    def until(self, ok: Callable[[], Any], within: float, *, beat: bool = True) -> float:
        t0 = time.monotonic()
        while not ok():
            if time.monotonic() - t0 > within:
                pytest.fail(f"not reached within {within} s; status {self.status()}")
            if beat:
                self.beat()
            time.sleep(0.1)
        return time.monotonic() - t0

    def act(self, path: str, **kw: Any) -> Any:
        r = self.api.client.post(f"/v1/streams/{self.sid}/{path}", headers=self.sup, **kw)
        assert r.status_code == 200, r.text
        return r.json()


# PostgreSQL only: its DB-specific path is the audit chain written by two writers at once (the
# API's actions and the supervision watch's safe-mode entries) and the worker's transcript lines,
# verified at the end; on SQLite the answers test below writes and verifies a live stream's chain
# (and tests/test_compliance_audit.py has two writers on both). Real time: one backend each.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_live_supervision_chat_transcript_and_audit(
    api_factory: Callable[..., AbstractContextManager[Api]],
) -> None:
    policy = {"heartbeat_timeout_s": POLICY_S, "stop_after_s": 300, "check_interval_s": 0.25}
    with api_factory(sections={"supervision": policy}) as api:
        live = Live(api)
        sid, c = live.sid, api.client
        live.until(lambda: (live.status()["frames"] or 0) > 25, START_S)

        # chat over HTTP: fates back, the answer on air and in the transcript
        ask = [{"viewer_id": "v1", "name": "Sanne", "text": "How much is the air fryer?"}]
        too_long = [{"viewer_id": "v1", "name": "x", "text": "a" * 501}]
        api.problem(c.post(f"/v1/streams/{sid}/chat", json=too_long, headers=api.auth()), 422)
        api.problem(c.post(f"/v1/streams/{sid}/chat", json=ask, headers=live.sup), 403)
        r = c.post(f"/v1/streams/{sid}/chat", json=ask, headers=api.auth("backend"))
        assert r.status_code == 200, r.text
        [fate] = r.json()["fates"]
        assert fate["outcome"] in ("pending", "answered") and fate["viewer_id"] == "v1"
        live.until(lambda: transcript(api, sid, "answer"), 10)
        answer = transcript(api, sid, "answer")[0]
        assert "@Sanne" in answer["text"] and answer["run"] == 0 and answer["wall_time"]

        # an on-air correction: in the transcript as "supervisor", in the audit log
        text = "Correction: the kettle costs 29.99 euros."
        live.act("say", json={"text": text})
        live.until(lambda: any(x["text"] == text for x in transcript(api, sid, "supervisor")), 10)

        # the WebSocket: a burst of 200 messages, every one gets a fate
        live.beat()
        auth = api.keys["backend"]
        with c.websocket_connect(f"/v1/streams/{sid}/chat/ws?key={auth}") as ws:
            for i in range(200):
                ws.send_text(
                    json.dumps(
                        {"viewer_id": f"w{i}", "name": "W", "text": f"hi {i}", "id": f"m{i}"}
                    )
                )
            fates = [f for _ in range(200) for f in json.loads(ws.receive_text())["fates"]]
        assert sorted(f["id"] for f in fates) == sorted(f"m{i}" for i in range(200))
        live.beat()

        for path in ("mute", "unmute", "products/KT-2/pause", "products/KT-2/resume"):
            live.act(path)
        assert "skipped" in live.act("products/AF-1/skip")["result"]
        live.act("products/KT-2/pin")  # applied at the next frame: the card shows it
        # the status is reported about once a second, and a sentence about the skipped product
        # that was being synthesised when the pin came may still be said first (seen once on
        # a loaded machine: 3 s was not enough); the frame-exact check is in test_replay_commands
        live.until(lambda: live.status()["product_id"] == "KT-2", 8)
        live.beat()

        # heartbeats lapse: safe mode within policy + 2 s; a heartbeat brings it back
        last = time.monotonic()
        live.until(lambda: live.status()["state"] == "safe_mode", POLICY_S + 4, beat=False)
        assert time.monotonic() - last <= POLICY_S + 2.0
        assert live.beat()["safe_mode"] is False
        live.until(lambda: live.status()["state"] == "live", 3)

        # kill: the stream ends and stays ended
        live.act("kill")
        live.until(lambda: live.status()["state"] == "stopped", 10, beat=False)
        time.sleep(1.0)
        body = c.get(f"/v1/streams/{sid}", headers=live.sup).json()
        assert body["desired_state"] == "stopped" and body["status"]["state"] == "stopped"
        api.problem(c.post(f"/v1/streams/{sid}/mute", headers=live.sup), 409)

        items = audit_items(api, sid)
        kinds = [e["kind"] for e in items]
        for kind in (
            "supervisor_on_duty",
            "stream_start",
            "stream_started",
            "say",
            "mute",
            "product_pause",
            "product_skip",
            "product_pin",
            "safe_mode_entered",
            "safe_mode_left",
            "kill",
            "stream_stopped",
        ):
            assert kind in kinds, (kind, kinds)
        said = next(e for e in items if e["kind"] == "say")
        assert said["actor"] == f"supervisor:{live.supervisor_id}"
        assert said["detail"]["text"] == text and said["detail"]["on_air_correction"]
        entered = next(e for e in items if e["kind"] == "safe_mode_entered")
        assert entered["actor"] == "system:supervision"
        with Session(api.engine) as session:
            result = AuditLog().verify_database(session)
        assert result.ok and result.entries >= len(items), result.first_bad


# real time, so SQLite only; on PostgreSQL: the audit and transcript writes of the live test above
# (the answer fates, approvals and rejections are the same rows on both: no DB-specific path)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_answers_wait_for_a_supervisor_before_they_go_on_air(api: Api) -> None:
    """With approval on, an answer is held out of the programme (and so out of the transcript)
    until approved; a rejected one never goes on air."""
    live = Live(api, approve_answers=True)
    sid, c = live.sid, api.client
    live.until(lambda: (live.status()["frames"] or 0) > 25, START_S)

    def ask(message_id: str, text: str) -> dict[str, Any]:
        msg = [{"viewer_id": message_id, "name": "Sanne", "text": text, "id": message_id}]
        r = c.post(f"/v1/streams/{sid}/chat", json=msg, headers=api.auth("backend"))
        assert r.status_code == 200, r.text
        fate: dict[str, Any] = r.json()["fates"][0]
        return fate

    def pending() -> list[dict[str, Any]]:
        r = c.get(f"/v1/streams/{sid}/answers/pending", headers=live.sup)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()
        return items

    assert ask("q1", "How much is the air fryer?")["outcome"] == "pending"
    assert ask("q2", "How much is the kettle?")["outcome"] == "pending"
    live.until(lambda: len(pending()) == 2, 10)
    held = {a["message_ids"][0]: a for a in pending()}
    fryer, kettle = held["q1"], held["q2"]
    assert "KT-2:price" in kettle["facts"] and "29.99" in kettle["answer"]
    assert fryer["askers"] == ["Sanne"] and fryer["answer"] != kettle["answer"]

    # held: the programme talks on (new lines reach the transcript) and no answer is among them
    seen = len(transcript(api, sid, None))
    live.until(lambda: len(transcript(api, sid, None)) >= seen + 2, 20)
    assert transcript(api, sid, "answer") == []
    said = {x["text"] for x in transcript(api, sid, None)}
    assert fryer["answer"] not in said and kettle["answer"] not in said

    api.problem(c.post(f"/v1/streams/{sid}/answers/a99/approve", headers=live.sup), 409)
    live.act(f"answers/{kettle['answer_id']}/reject")
    live.act(f"answers/{fryer['answer_id']}/approve")
    assert pending() == []
    live.until(lambda: transcript(api, sid, "answer"), 15)
    [aired] = transcript(api, sid, "answer")
    assert aired["text"] == fryer["answer"] and aired["source"] == "answer"

    # the programme goes on past the approved answer; the rejected one never comes
    seen = len(transcript(api, sid, None))
    live.until(lambda: len(transcript(api, sid, None)) >= seen + 2, 20)
    assert [x["text"] for x in transcript(api, sid, "answer")] == [fryer["answer"]]
    assert kettle["answer"] not in {x["text"] for x in transcript(api, sid, None)}
    items = audit_items(api, sid)
    kinds = [e["kind"] for e in items]
    assert "answer_rejected" in kinds and "answer_approved" in kinds
    with Session(api.engine) as session:  # the chain a live stream wrote holds on SQLite too
        result = AuditLog().verify_database(session)
    assert result.ok and result.entries >= len(items), result.first_bad
