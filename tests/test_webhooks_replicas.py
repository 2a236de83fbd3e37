"""Two real ``avatarcast serve`` replicas on one PostgreSQL send each webhook delivery once.

Both replicas' dispatchers poll the same deliveries table; before deliveries were claimed,
each sent whatever it found pending (the soak's note: with two replicas every alert twice). A
slow receiver (0.3 s an answer) keeps each delivery in flight while the other replica polls
every 50 ms, so a delivery that is not claimed is sent twice for sure."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from avatarcast.control.webhooks import store
from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.db.base import utcnow
from avatarcast.db.models_webhooks import WebhookDelivery
from pg_server import PgServer
from served import serve
from webhook_receiver import Receiver

SECRET = "whsec-" + "r" * 26
ENV = {
    "AVATARCAST_API__ALLOW_PRIVATE_DESTINATIONS": "true",
    "AVATARCAST_WEBHOOKS__POLL_S": "0.05",
}
EVENTS = 24


class SlowReceiver(Receiver):
    def take(self, body: bytes, headers: dict[str, str]) -> int:
        time.sleep(0.3)  # outside the lock: deliveries are answered in parallel
        return super().take(body, headers)


def test_two_replicas_send_each_delivery_once(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.create_database(f"replicas_{uuid.uuid4().hex[:8]}", template="api_template")
    with (
        SlowReceiver(SECRET) as receiver,
        serve(tmp_path / "a", ENV, database_url=url) as a,
        serve(tmp_path / "b", ENV, database_url=url, seeded=False),
    ):
        with a.client("admin") as c:
            body = {"url": receiver.url, "secret": SECRET, "events": ["*"]}
            hook = c.post("/v1/webhooks", json=body)
            assert hook.status_code == 201, hook.text
        events: list[dict[str, Any]] = [
            {
                "id": uuid.uuid4().hex,
                "kind": "glitch",
                "tenant_id": a.tenant_id,
                "stream_id": f"s{i}",
                "time": utcnow().isoformat(),
                "detail": {"n": i},
            }
            for i in range(EVENTS)
        ]
        engine = make_engine(url)
        try:
            sessions = make_sessionmaker(engine)
            # queued as a stream event is (the dispatcher's own store.enqueue): both replicas
            # see them pending at their next poll
            assert store.enqueue(sessions, events) == EVENTS
            deadline = time.monotonic() + 60
            while len({b["delivery_id"] for b in receiver.got}) < EVENTS:
                assert time.monotonic() < deadline, receiver.kinds()
                time.sleep(0.1)
            time.sleep(1.5)  # long enough for any second sending to arrive
            with sessions() as session:
                rows = session.query(WebhookDelivery).all()
                assert [(r.status, r.attempts) for r in rows] == [("delivered", 1)] * EVENTS
        finally:
            engine.dispose()
    sent = Counter(b["delivery_id"] for b in receiver.got)
    assert sorted(b["detail"]["n"] for b in receiver.got) == list(range(EVENTS)), sent
    assert set(sent.values()) == {1}, sent
    assert not receiver.refused
