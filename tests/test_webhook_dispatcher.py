"""The dispatcher in-process against a real receiver on loopback: an event becomes a signed
delivery, a receiver that keeps failing puts it on the dead-letter list, old deliveries are
pruned, and a database that cannot take events keeps them for the next round."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from avatarcast.control import create_key, upgrade_database
from avatarcast.control.webhooks import store
from avatarcast.control.webhooks.dispatcher import WebhookDispatcher
from avatarcast.db import make_engine, make_sessionmaker
from avatarcast.db.models_webhooks import Webhook, WebhookDelivery
from avatarcast.netpolicy import NetPolicy
from avatarcast.runner.base import StreamEvent
from avatarcast.settings import WebhookSettings
from webhook_receiver import Receiver

SECRET = "dispatcher-secret-0123456789"


async def test_deliver_retry_dead_letter_and_prune(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_database(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    tenant, _ = create_key(sessions, tenant_name="acme")
    options = WebhookSettings(max_attempts=2, backoff_start_s=0.01, poll_s=0.05)
    dispatcher = WebhookDispatcher(
        sessions=sessions,
        open_secret=lambda s: s,  # stored as given here; the app seals it with the server key
        policy=NetPolicy(allow_private=True),
        options=options,
    )
    try:
        with Receiver(SECRET) as receiver:
            with sessions() as session:
                for i, events in enumerate((["glitch"], ["*"], ["stopped"])):
                    hook = Webhook(id=f"h{i}", tenant_id=tenant, url=receiver.url, secret=SECRET)
                    hook.events = events
                    session.add(hook)
                session.commit()
            for kind in ("glitch", "line", "crashed"):
                event = StreamEvent(stream_id="s1", tenant_id=tenant, kind=kind, detail={"n": 1})
                dispatcher.on_event(event)
            await dispatcher.flush()
            assert await dispatcher.send_due() == 3  # glitch to h0 and h1, crashed to h1
            assert sorted(receiver.kinds()) == ["crashed", "glitch", "glitch"]
            got = receiver.wait_for("crashed")
            assert got["detail"] == {"n": 1} and got["attempt"] == 1 and got["stream_id"] == "s1"
            receiver.fail_next = 4  # both deliveries of the next event fail both attempts
            dispatcher.on_event(StreamEvent(stream_id="s1", tenant_id=tenant, kind="stopped"))
            await dispatcher.flush()
            for _ in range(50):
                await dispatcher.send_due()
                with sessions() as session:
                    query = select(WebhookDelivery).where(WebhookDelivery.kind == "stopped")
                    rows = session.scalars(query).all()
                if all(r.status != "pending" for r in rows):
                    break
            assert [(r.status, r.attempts, r.last_status) for r in rows] == [("dead", 2, 500)] * 2
        assert store.prune(sessions, keep_s=0) == 3  # delivered ones; dead letters stay
        with sessions() as session:
            left = session.scalars(select(WebhookDelivery.status)).all()
        assert left == ["dead", "dead"]
        engine.dispose()  # the database goes away: events wait in memory
        (tmp_path / "db.sqlite").rename(tmp_path / "gone.sqlite")
        (tmp_path / "db.sqlite").mkdir()
        dispatcher.on_event(StreamEvent(stream_id="s1", tenant_id=tenant, kind="glitch"))
        with pytest.raises(Exception):  # noqa: B017  (whatever the driver raises)
            await dispatcher.flush()
        assert dispatcher.queued == 1
    finally:
        engine.dispose()
