"""espeak keeps no C memory per sentence (issues #15/#18: a stream's RSS slope <= 1 MB/h).

The voice loads a fresh copy of libespeak-ng for every sentence, and choosing a voice left the
library's voice list behind each time: glibc's in-use bytes grew by 2.0-2.6 KB a sentence, ~2 MB
an hour of talk. Run in a fresh interpreter, so glibc's figures are this synthesis's alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import ctypes, gc, json

from avatarcast.voice.espeak import _Library

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2

def in_use():
    gc.collect()
    return libc.mallinfo2().uordblks

lib = _Library.get()
voices = ("en-us", "en-us+f1", "nl")
def speak(i):
    text = f"The blue kettle number {i} costs twenty nine dollars."
    return lib.synthesize(text, voice=voices[i % 3], rate=165, pitch=None)

for i in range(10):  # warm up: ctypes' caches, the first of each voice
    speak(i)
before = in_use()
n = 90
samples = sum(len(b"".join(speak(i).pcm)) // 2 for i in range(n))
print(json.dumps({"per_sentence": (in_use() - before) / n, "samples": samples, "n": n}))
"""


def test_espeak_keeps_no_memory_per_sentence() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert m["samples"] > m["n"] * 22050, m  # real speech: over a second a sentence at 22 kHz
    assert m["per_sentence"] < 300, m  # bytes; it was 2 000-2 600 before the list was freed


KILLED = """
import os, signal, sys

from avatarcast.voice.espeak import _Library

raw = _Library.get().synthesize("Free shipping tonight.", voice="en-us", rate=165, pitch=None)
print(len(b"".join(raw.pcm)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # as a crashed or killed stream worker ends
"""


def test_a_killed_process_leaves_no_espeak_copy_behind(tmp_path: Path) -> None:
    """The private copy of libespeak-ng is an anonymous memory file, not a file in /tmp that
    only a clean exit removed: a worker killed 83 times left 83 copies of 660 KB."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TMPDIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", KILLED], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == -9, out.stderr
    assert int(out.stdout) > 22050, out.stdout  # it spoke: over a second of samples
    assert sorted(p.name for p in tmp_path.iterdir()) == []
