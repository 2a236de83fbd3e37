"""A stream's recorded session: what ``avatarcast replay`` reads to replay a live night.

The worker writes one session per run (``session-<start>-r<run>.jsonl`` in the stream's
record folder, see :mod:`avatarcast.runner.session_log`); this route hands it out as JSON
Lines. Retention deletes them with the recording; ``avatarcast export`` includes them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse

from avatarcast.compliance.records import stream_dir
from avatarcast.control.deps import ContextDep, ReaderDep, SessionDep
from avatarcast.control.problems import ProblemError, problem_responses
from avatarcast.control.routes import AUTH_PROBLEMS
from avatarcast.control.routes.streams import get_stream
from avatarcast.runner.session_log import find_session

router = APIRouter(prefix="/v1/streams", tags=["streams"], responses=AUTH_PROBLEMS)

StreamIdPath = Annotated[str, Path(max_length=64)]
RunQuery = Annotated[
    int | None,
    Query(ge=0, le=1_000_000, description="Which run (restart) of the stream; default latest."),
]


@router.get(
    "/{stream_id}/session",
    response_class=FileResponse,
    responses={
        **problem_responses(404),
        200: {"content": {"application/x-ndjson": {}}, "description": "The session."},
    },
)
def get_session(
    stream_id: StreamIdPath,
    session: SessionDep,
    caller: ReaderDep,
    ctx: ContextDep,
    run: RunQuery = None,
) -> FileResponse:
    """The stream's recorded session (JSON Lines, the format ``avatarcast replay`` reads): the
    catalog at the start, then every command and catalog change at the media time it took
    effect. The latest run's, or run ``run``'s (the count of restarts, as in the transcript)."""
    get_stream(session, caller.tenant_id, stream_id)
    folder = stream_dir(ctx.settings.recordings_dir, caller.tenant_id, stream_id)
    found = find_session(folder, run) if folder.is_dir() else None
    if found is None:
        which = "" if run is None else f" for run {run}"
        raise ProblemError(
            404, f"stream {stream_id!r} has no recorded session{which}", kind="not-found"
        )
    return FileResponse(
        found,
        media_type="application/x-ndjson",
        filename=found.name,
        headers={"Cache-Control": "no-store"},
    )
