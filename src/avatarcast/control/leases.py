"""Stream ownership across API processes: a lease row per stream on air.

Before a process starts a stream's worker it claims the stream's ``stream_leases`` row in one
transaction: an UPDATE that succeeds only when the row is its own or expired (PostgreSQL
re-checks the condition on the row it locked, so of two claimers exactly one wins), else an
INSERT that the primary key lets only one process make. The owner renews its leases while the
streams run and deletes them when it stops them; a process that dies leaves leases that expire
after ``ttl``, and another process takes the streams over (:meth:`StreamLeases.orphans`).

Times are each process's wall clock: replicas must keep their clocks in step (NTP) to well
under the ttl.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from avatarcast.db.base import utcnow
from avatarcast.db.models_streams import StreamLease, StreamRow

__all__ = ["StreamLeases"]


class StreamLeases:
    """The leases of one process (``replica``); every method is blocking (call in a thread)."""

    def __init__(self, sessions: sessionmaker[Session], *, replica: str, ttl_s: float) -> None:
        self._sessions = sessions
        self.replica = replica
        self.ttl = timedelta(seconds=ttl_s)

    def claim(self, stream_id: str) -> str | None:
        """Make ``stream_id`` ours; None when it is, else the replica that holds it."""
        now = utcnow()
        with self._sessions() as session:
            mine = or_(StreamLease.owner == self.replica, StreamLease.expires_at < now)
            claimed = session.execute(
                update(StreamLease)
                .where(StreamLease.stream_id == stream_id, mine)
                .values(owner=self.replica, expires_at=now + self.ttl)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                session.commit()
                return None
            session.rollback()
            session.add(
                StreamLease(stream_id=stream_id, owner=self.replica, expires_at=now + self.ttl)
            )
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
            owner = session.scalar(
                select(StreamLease.owner).where(StreamLease.stream_id == stream_id)
            )
            return owner or "another replica"

    def renew(self, stream_ids: Iterable[str]) -> set[str]:
        """Extend our leases of ``stream_ids``; returns those that are no longer ours."""
        wanted = set(stream_ids)
        if not wanted:
            return set()
        with self._sessions() as session:
            session.execute(
                update(StreamLease)
                .where(StreamLease.owner == self.replica, StreamLease.stream_id.in_(wanted))
                .values(expires_at=utcnow() + self.ttl)
            )
            held = set(
                session.scalars(
                    select(StreamLease.stream_id).where(
                        StreamLease.owner == self.replica, StreamLease.stream_id.in_(wanted)
                    )
                )
            )
            session.commit()
        return wanted - held

    def release(self, stream_ids: Iterable[str] | None = None) -> None:
        """Drop our leases of ``stream_ids`` (None: all of ours), so others need not wait."""
        query = delete(StreamLease).where(StreamLease.owner == self.replica)
        if stream_ids is not None:
            query = query.where(StreamLease.stream_id.in_(list(stream_ids)))
        with self._sessions() as session:
            session.execute(query)
            session.commit()

    def orphans(self) -> list[str]:
        """Streams that should be on air, with someone on duty, that no live process holds
        (never claimed, or their owner stopped renewing), oldest first."""
        now = utcnow()
        with self._sessions() as session:
            query = (
                select(StreamRow.id)
                .outerjoin(StreamLease, StreamLease.stream_id == StreamRow.id)
                .where(
                    StreamRow.desired_state.in_(("live", "paused")),
                    StreamRow.duty_supervisor_id.is_not(None),
                    or_(StreamLease.stream_id.is_(None), StreamLease.expires_at < now),
                )
                .order_by(StreamRow.created_at)
            )
            return list(session.scalars(query))

    def owned(self) -> dict[str, str]:
        """The desired state of each stream whose lease is ours: a change made through
        another process (stop, pause, resume) shows here."""
        with self._sessions() as session:
            query = (
                select(StreamRow.id, StreamRow.desired_state)
                .join(StreamLease, StreamLease.stream_id == StreamRow.id)
                .where(StreamLease.owner == self.replica)
            )
            return {sid: desired for sid, desired in session.execute(query)}
