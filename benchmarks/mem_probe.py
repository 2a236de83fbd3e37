"""Where a live stream's memory goes, from inside its process (issues #15 and #18).

``python benchmarks/mem_probe.py --out FILE [--every S] [--tracemalloc] -- live ARGS...`` runs
the CLI's ``live`` command in this process and, from a thread, writes a JSON line every ``S``
seconds:

- ``rss``/``anon``: VmRSS and RssAnon of this process (MB), ``tree_rss``/``tree_anon`` with its
  children (the RTMP push and WHEP processes);
- ``mi``: glibc's ``mallinfo2`` (MB): ``arena`` (bytes the arenas hold from the system),
  ``inuse`` (allocated in them), ``free`` (free in them, the fragmentation once trimmed),
  ``mmap`` (blocks served by their own mappings), ``keep`` (trimmable top);
- ``arenas``: per arena from ``malloc_info`` (MB): system current, free (fast + rest) and
  in use, so a growing arena and its owner thread can be told apart;
- ``maps``: resident MB of the anonymous mappings by kind from ``/proc/self/smaps``: ``heap``
  (the main arena's brk heap), ``theap`` (thread arenas' 64 MiB heaps), ``big`` (other anonymous
  mappings of 1 MiB and more: mmapped blocks, Python's object arenas, thread stacks), ``small``;
- ``threads``: the kernel's thread names; ``blocks``: ``sys.getallocatedblocks()``;
- with ``--tracemalloc``: the traced Python memory, and at the end the 25 biggest growths by
  line between the first snapshot (after 3 minutes) and the last.

The growth a soak sees in a worker (17-22 MB/h, benchmarks/README.md "Soak") is in the worker's
own process; a CLI stream runs the same pipeline. The allocator under test is chosen outside:
``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES`` or ``LD_PRELOAD`` of another malloc (then the glibc
figures read zero: ``malloc_info`` and ``mallinfo2`` see only glibc's own heap).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import sys
import threading
import time
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

MB = 2**20
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def mallinfo() -> dict[str, float]:
    try:
        fn = _libc.mallinfo2
    except AttributeError:
        return {}
    fn.restype = _Mallinfo2
    m = fn()
    return {
        "arena": m.arena / MB,
        "inuse": m.uordblks / MB,
        "free": m.fordblks / MB,
        "mmap": m.hblkhd / MB,
        "mmap_n": m.hblks,
        "keep": m.keepcost / MB,
    }


def malloc_info() -> list[dict[str, float]]:
    """Per arena: system bytes now, free bytes (fastbins + the rest), in use (MB).

    Nothing where another allocator is preloaded (``LD_PRELOAD``): glibc's arenas are then
    empty, and the buffer ``open_memstream`` hands back belongs to that allocator.
    """
    if "malloc" in os.environ.get("LD_PRELOAD", ""):
        return []
    buf, size = ctypes.c_char_p(), ctypes.c_size_t()
    _libc.open_memstream.restype = ctypes.c_void_p
    fp = _libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
    if not fp:
        return []
    try:
        _libc.malloc_info(0, ctypes.c_void_p(fp))
    finally:
        _libc.fclose(ctypes.c_void_p(fp))
    text = ctypes.string_at(buf, size.value).decode()
    _libc.free(buf)
    out = []
    for heap in ET.fromstring(text).findall("heap"):
        free = sum(int(t.get("size", 0)) for t in heap.findall("total"))
        system = next(
            (int(s.get("size", 0)) for s in heap.findall("system") if s.get("type") == "current"),
            0,
        )
        out.append(
            {
                "nr": int(heap.get("nr", -1)),
                "sys": system / MB,
                "free": free / MB,
                "inuse": (system - free) / MB,
            }
        )
    return out


def _kb(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def smaps_kinds() -> dict[str, float]:
    """Resident MB of anonymous mappings by kind (see the module docstring)."""
    kinds = {"heap": 0.0, "theap": 0.0, "big": 0.0, "small": 0.0, "files": 0.0}
    kind = "files"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not line.endswith(" kB"):
            start, end = (int(x, 16) for x in head[0].split("-"))
            name = head[5] if len(head) > 5 else ""
            if name == "[heap]":
                kind = "heap"
            elif name:
                kind = "files" if name.startswith("/") else "small"
            elif start % (64 * MB) == 0 and end - start <= 64 * MB:
                kind = "theap"  # glibc's thread arena heaps are 64 MiB aligned
            elif end - start >= MB:
                kind = "big"
            else:
                kind = "small"
        elif head[0] == "Rss:":
            kinds[kind] += int(head[1]) / 1024
    return kinds


def _children(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                text = Path(f"/proc/{p}/task/{task}/children").read_text()
                todo += [int(x) for x in text.split()]
        except OSError:
            continue
    return out


def tree_mem(pid: int) -> tuple[float, float, float]:
    rss = anon = cpu = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in _children(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        rss += _kb(status, "VmRSS:") / 1024
        anon += _kb(status, "RssAnon:") / 1024
        cpu += (int(stat[11]) + int(stat[12])) / tick
    return rss, anon, cpu


def thread_names() -> dict[str, int]:
    names: dict[str, int] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{task}/comm").read_text().strip()
        except OSError:
            continue
        names[name] = names.get(name, 0) + 1
    return names


def sample(t0: float, traced: bool) -> dict[str, Any]:
    status = Path("/proc/self/status").read_text()
    rss, anon, cpu = tree_mem(os.getpid())
    row: dict[str, Any] = {
        "t": round(time.monotonic() - t0, 1),
        "load": float(Path("/proc/loadavg").read_text().split()[0]),
        "rss": _kb(status, "VmRSS:") / 1024,
        "anon": _kb(status, "RssAnon:") / 1024,
        "tree_rss": rss,
        "tree_anon": anon,
        "tree_cpu": cpu,
        "mi": mallinfo(),
        "arenas": malloc_info(),
        "maps": smaps_kinds(),
        "threads": thread_names(),
        "blocks": sys.getallocatedblocks(),
    }
    if traced:
        row["traced"] = tracemalloc.get_traced_memory()[0] / MB
    return row


def _sampler(out: Path, every: float, traced: bool, stop: threading.Event) -> None:
    t0 = time.monotonic()
    first: tracemalloc.Snapshot | None = None
    with out.open("w") as f:
        while not stop.wait(every):
            f.write(json.dumps(sample(t0, traced)) + "\n")
            f.flush()
            if traced and first is None and time.monotonic() - t0 > 180:
                first = tracemalloc.take_snapshot()
    if traced and first is not None:
        last = tracemalloc.take_snapshot()
        diff = last.compare_to(first, "lineno")[:25]
        out.with_suffix(".tracemalloc.txt").write_text("\n".join(str(d) for d in diff) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON lines file")
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("cli", nargs=argparse.REMAINDER, help="-- then the avatarcast command")
    args = ap.parse_args()
    cli = args.cli[1:] if args.cli[:1] == ["--"] else args.cli
    if args.tracemalloc:
        tracemalloc.start(1)
    stop = threading.Event()
    thread = threading.Thread(
        target=_sampler, args=(args.out, args.every, args.tracemalloc, stop), daemon=True
    )
    thread.start()
    from avatarcast.cli import app

    try:
        app(cli, prog_name="avatarcast", standalone_mode=False)
    finally:
        stop.set()
        thread.join(timeout=60)


if __name__ == "__main__":
    main()
