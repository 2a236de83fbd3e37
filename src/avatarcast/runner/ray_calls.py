"""Thin calls into Ray for the Ray backend (:mod:`runner.cluster`, :mod:`runner.ray_spares`).

Ray is an optional extra, so each imports it where it runs. Blocking ones are called through
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from typing import Any

__all__ = [
    "NAMESPACE",
    "awaited",
    "died",
    "get_actor",
    "kill_actor",
    "kv_forget",
    "kv_get",
    "kv_put",
    "live_nodes",
    "named_actors",
]

NAMESPACE = "avatarcast"


async def awaited(ref: Awaitable[Any]) -> Any:
    return await ref


def named_actors() -> list[str]:
    import ray

    return sorted(str(name) for name in ray.util.list_named_actors())


def get_actor(name: str) -> Any:
    import ray

    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:  # gone between the listing and now
        return None


def kill_actor(handle: Any) -> None:
    import ray

    with contextlib.suppress(Exception):
        ray.kill(handle, no_restart=True)


def died(e: BaseException) -> bool:
    """The actor is dead for good (not restarting, not merely slow)."""
    from ray.exceptions import ActorDiedError

    return isinstance(e, ActorDiedError)


def live_nodes(num_cpus: float) -> list[str]:
    """The ids of the live nodes that can hold a stream's actor."""
    import ray

    return [
        str(n["NodeID"])
        for n in ray.nodes()  # type: ignore[no-untyped-call]
        if n.get("Alive") and n.get("Resources", {}).get("CPU", 0.0) >= num_cpus
    ]


def kv_put(key: str, value: str, overwrite: bool) -> bool:
    """True when ``key`` was not there before (with ``overwrite`` False: nothing written
    when it was)."""
    from ray.experimental import internal_kv

    existed = internal_kv._internal_kv_put(key, value, overwrite, namespace=NAMESPACE)
    return not existed


def kv_get(key: str) -> str | None:
    from ray.experimental import internal_kv

    value = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
    return value.decode() if value is not None else None


def kv_forget(stream_id: str) -> None:
    from ray.experimental import internal_kv

    with contextlib.suppress(Exception):
        internal_kv._internal_kv_del(f"host/{stream_id}", namespace=NAMESPACE)
        prefix = f"replaced/{stream_id}/"
        internal_kv._internal_kv_del(prefix, del_by_prefix=True, namespace=NAMESPACE)
