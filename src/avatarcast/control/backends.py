"""Which stream backend the app runs on (``settings.runner.backend``), opened and closed with
it: the local worker processes, or detached actors on a Ray cluster (imported only then: Ray
is the optional ``avatarcast[ray]`` extra)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from avatarcast.errors import ConfigError
from avatarcast.runner.base import EventCallback, StreamRunner
from avatarcast.runner.local import LocalRunner
from avatarcast.settings import RunnerSettings

__all__ = ["open_runner"]


@asynccontextmanager
async def open_runner(
    settings: RunnerSettings, *, on_event: EventCallback, on_output: EventCallback
) -> AsyncIterator[StreamRunner]:
    """The runner, ready: for Ray, joined to the cluster, re-attached to the stream actors
    already there and polled until the block ends (the actors outlive it)."""
    if settings.backend == "local":
        yield LocalRunner(
            on_event=on_event,
            on_output=on_output,
            nice=settings.worker_nice,
            spare=settings.spare_worker,
            zygote=settings.zygote,
        )
        return
    try:
        from avatarcast.runner.cluster import RayResources, RayRunner
        from avatarcast.runner.ray_host import HostOptions
    except ImportError as e:  # ray itself is imported lazily; this is the extra missing
        raise ConfigError(f"runner.backend = 'ray' needs the avatarcast[ray] extra: {e}") from e
    runner = RayRunner(
        address=settings.ray_address,
        on_event=on_event,
        on_output=on_output,
        resources=RayResources(
            num_cpus=settings.ray_num_cpus,
            memory_mb=settings.ray_memory_mb,
            onnx_gpus=settings.ray_onnx_gpus,
        ),
        host=HostOptions(
            nice=settings.worker_nice,
            zygote=settings.zygote,
            recordings_dir=settings.ray_recordings_dir,
        ),
        spares=settings.ray_spares,
    )
    try:
        await runner.open()
    except ImportError as e:
        raise ConfigError(f"runner.backend = 'ray' needs the avatarcast[ray] extra: {e}") from e
    try:
        async with asyncio.TaskGroup() as tg:
            poller = tg.create_task(runner.run())
            try:
                yield runner
            finally:
                poller.cancel()
    finally:
        await runner.close()
