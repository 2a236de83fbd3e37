"""Threads the kernel can tell apart: OS-level names, and lower priority for background work.

Python 3.11 names threads only inside Python; the kernel sees every one as ``python``. A
per-stage CPU split (compose, encode, x264, recorder, RTMP feed, voice) needs the kernel name,
which ``prctl(PR_SET_NAME)`` sets for the calling thread (at most 15 bytes). Threads a C
library starts (libx264's) inherit the name of the thread that started them.

Work that is not on the frame clock (imports and building a programme before it goes on air,
starting the RTMP push process) runs in a thread at a lower
priority (Linux ``nice`` is per thread, and threads and processes started from such a thread
inherit it). Several streams launched at once then cannot make the ones already on air late:
the frame clock's threads win the CPU whenever both want it. No privilege is needed, as the
priority only ever goes down, and on an idle machine nothing changes. The price: such a thread
can be preempted while it holds the GIL and hold up its own process's frame threads for a
moment. So espeak, which needs ~10-16 ms of CPU a sentence but took the GIL 105 times for
6 s of sound, speaks in a thread at normal priority (``in_thread``): at low priority 8 twin
streams had their late frames bunched where their own voice ran (benchmarks/README.md, twin4;
an earlier run C, when a sentence cost ~60 ms of CPU, had favoured low priority).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

from avatarcast import trace

__all__ = [
    "BACKGROUND_NICE",
    "call_in_background",
    "import_in_background",
    "in_background",
    "in_thread",
    "lower_thread_priority",
    "named_pool",
    "os_thread_name",
    "os_thread_named",
    "set_os_thread_name",
    "start_named_thread",
    "trim_heap",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

BACKGROUND_NICE = 10
"""How much lower than the frame clock background threads run (nice 10: ~1/10 of the CPU share
when both compete)."""

_PR_SET_NAME = 15
_PR_GET_NAME = 16
_libc: Any = None


def _prctl() -> Any:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            _libc = False
    return _libc or None


def set_os_thread_name(name: str) -> None:
    """Name the calling thread for the kernel; a no-op where prctl is missing."""
    libc = _prctl()
    if libc is not None:
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def os_thread_name() -> str:
    """The kernel's name of the calling thread ("" where prctl is missing)."""
    libc = _prctl()
    if libc is None:
        return ""
    out = ctypes.create_string_buffer(16)
    libc.prctl(_PR_GET_NAME, out, 0, 0, 0)
    return out.value.decode(errors="replace")


@contextmanager
def os_thread_named(name: str) -> Iterator[None]:
    """The calling thread carries ``name`` inside the block (threads started there keep it)."""
    before = os_thread_name()
    set_os_thread_name(name)
    try:
        yield
    finally:
        set_os_thread_name(before)


def named_pool(name: str, workers: int = 1) -> ThreadPoolExecutor:
    """A thread pool whose threads the kernel knows as ``name``."""
    return ThreadPoolExecutor(
        workers, thread_name_prefix=name, initializer=set_os_thread_name, initargs=(name,)
    )


def start_named_thread(name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
    """Start a daemon thread named ``name`` in Python and for the kernel."""

    def run() -> None:
        set_os_thread_name(name)
        target(*args)

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


def trim_heap() -> bool:
    """Hand the heap memory glibc's malloc holds free back to the kernel (``malloc_trim(0)``).

    A stream's threads free frames, packets and caption plates in one arena and allocate in
    another, so freed memory stays in the process: over 30 minutes of media a programme's
    anonymous memory rose from 137 to 157 MB, of which 8-25 MB came back at each trim. Returns
    whether anything was released (False where the C library has no ``malloc_trim``).
    """
    libc = _prctl()
    if libc is None:
        return False
    try:
        fn = libc.malloc_trim
    except AttributeError:  # not glibc
        return False
    return bool(fn(0))


#: mallopt's parameter number for the mmap threshold (glibc malloc.h: M_MMAP_THRESHOLD)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 2**20


def fix_mmap_threshold(limit: int = MMAP_THRESHOLD) -> bool:
    """Serve allocations of ``limit`` bytes and more with their own mappings, given back on
    free, and stop glibc from raising that threshold as it goes (``mallopt``).

    By default glibc raises the threshold to the size of each mapped block freed (up to
    32 MiB), so after the first big buffer is freed all later ones come from the threads'
    arenas, which they fragment and keep. An hour of media on the simulated clock
    (tests/test_memory_levels.py): anonymous memory 222 -> 246 MB rising steadily by default,
    201 -> 211 MB and flat over the second half hour with a 4 MiB threshold, for +5.5 s of
    system CPU over the hour (page faults of the mapped blocks). Call it at process start:
    a stream worker, the CLI's live command. Returns False where the C library has no mallopt.
    """
    libc = _prctl()
    if libc is None:
        return False
    try:
        fn = libc.mallopt
    except AttributeError:  # not glibc
        return False
    return bool(fn(_M_MMAP_THRESHOLD, limit))


def lower_thread_priority(by: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's priority by ``by`` nice steps (Linux: per thread)."""
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + by))
    except OSError:
        pass  # not Linux, or a sandbox that forbids it: run at the normal priority


def _background_thread(name: str, run: Callable[[], None], nice: int = BACKGROUND_NICE) -> None:
    def main() -> None:
        set_os_thread_name(name)
        if nice:
            lower_thread_priority(nice)
        run()

    threading.Thread(target=main, name=name, daemon=True).start()


def call_in_background(fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``fn(*args, **kwargs)`` in a fresh low-priority thread; blocks until it returns."""
    box: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append((True, fn(*args, **kwargs)))
        except BaseException as exc:
            box.append((False, exc))
        finally:
            done.set()

    _background_thread("background", run)
    done.wait()
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def import_in_background(module: str) -> ModuleType:
    """Import ``module`` (and everything it imports) at low priority."""
    return call_in_background(importlib.import_module, module)


async def in_background(fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Await ``fn(*args, **kwargs)`` run in a fresh low-priority thread."""
    return await _in_thread(BACKGROUND_NICE, fn, *args, **kwargs)


async def in_thread(fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Await ``fn(*args, **kwargs)`` run in a fresh thread at the caller's priority.

    For work off the frame clock that needs little CPU but takes the GIL many times (espeak
    calls back into Python for each block of sound): in a low-priority thread each of those
    takes can leave the GIL with a thread that waits for a CPU, and the stream's frame threads
    wait behind it. 8 twin streams on 2 cores, with espeak in a low-priority thread: 0.928 and
    0.973 of frames on time, the late ones while the stream's own voice ran 3.5-10x as often as
    otherwise (benchmarks/README.md, twin4).
    """
    return await _in_thread(0, fn, *args, **kwargs)


async def _in_thread(nice: int, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()
    call = functools.partial(fn, *args, **kwargs)

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        t0, c0 = time.time(), time.thread_time()
        try:
            result: tuple[bool, Any] = (True, call())
        except BaseException as exc:
            result = (False, exc)
        if trace.enabled():
            name = getattr(fn, "__qualname__", repr(fn))
            trace.record("bg", name, t0, time.time() - t0, time.thread_time() - c0)
        try:
            loop.call_soon_threadsafe(settle, *result)
        except RuntimeError:
            pass  # the loop closed while we worked: nobody is waiting

    _background_thread("background", run, nice)
    return await future
