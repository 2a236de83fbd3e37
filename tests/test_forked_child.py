"""The worker's side of helpers forked by the zygote (``output._forked_child``), on real
processes: a helper's exit as its zygote reports it, or through its pidfd when the zygote died
first; a refused or impossible fork, after which the helper starts cold as without a zygote.
The zygote's side runs for real in ``test_zygote.py``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from avatarcast.output._child import spawn_child, stop_child
from avatarcast.output._forked_child import UNKNOWN_EXIT, ChildForker, ForkedChild

PUSH = "avatarcast.output._rtmp_push"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for a helper; the test reaps it, as the zygote would."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    if proc.returncode is None:
        proc.kill()
        proc.wait()


def reap(proc: subprocess.Popen[bytes]) -> int:
    """The raw wait status, as the zygote writes it on the exit pipe."""
    _, status = os.waitpid(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return status


def test_the_exit_the_zygote_reports_is_the_childs(sleeper: subprocess.Popen[bytes]) -> None:
    exit_r, exit_w = os.pipe()
    child = ForkedChild(PUSH, sleeper.pid, os.pidfd_open(sleeper.pid), exit_r)
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.05)
    child.kill()  # through the pidfd
    os.write(exit_w, f"{reap(sleeper)}\n".encode())
    os.close(exit_w)
    assert child.wait(5) == -signal.SIGKILL and child.returncode == -signal.SIGKILL
    child.kill()  # ended: nothing is signalled, nothing raises
    stop_child(child, [], timeout=1, what="the helper")  # as its owners stop it


def test_a_helper_whose_zygote_died_ends_through_its_pidfd(
    sleeper: subprocess.Popen[bytes],
) -> None:
    exit_r, exit_w = os.pipe()
    child = ForkedChild(PUSH, sleeper.pid, os.pidfd_open(sleeper.pid), exit_r)
    os.close(exit_w)  # the zygote is gone: no status will come
    assert child.poll() is None  # still running, seen through the pidfd
    os.kill(sleeper.pid, signal.SIGTERM)
    reap(sleeper)
    assert child.wait(5) == UNKNOWN_EXIT


def answer(link: socket.socket, reply: dict[str, object]) -> list[int]:
    """Play the zygote once: take a request, answer ``reply``; the descriptors it got."""
    message, fds, _, _ = socket.recv_fds(link, 4096, 5)
    request = json.loads(message)
    assert request["module"] == PUSH and len(fds) == 5
    assert request["nice"] == os.getpriority(os.PRIO_PROCESS, 0)
    link.send(json.dumps(reply).encode())
    return fds


def test_a_refused_fork_gives_none_and_the_next_may_fork() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    forker = ChildForker(ours, timeout=10)
    got: list[list[int]] = []
    zygote = threading.Thread(
        target=lambda: got.append(answer(theirs, {"error": "the zygote has 2 threads"}))
    )
    zygote.start()
    assert forker.fork(PUSH) is None
    zygote.join(10)
    assert not forker.broken  # refused this once: the next helper asks again
    for fd in got[0]:
        os.close(fd)
    with pytest.raises(ValueError, match="does not run"):
        forker.fork("os")  # only the helpers' modules, whatever the zygote would say
    forker.close()
    theirs.close()


def test_without_its_zygote_a_helper_starts_cold() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.close()  # the zygote died
    forker = ChildForker(ours, timeout=10)
    proc, in_w, st_r = asyncio.run(
        spawn_child(PUSH, run=asyncio.to_thread, forker=forker, stderr=subprocess.DEVNULL)
    )
    try:
        assert forker.broken  # every later helper starts cold at once
        assert isinstance(proc, subprocess.Popen)
        args = proc.args
        assert isinstance(args, list) and args[1:3] == ["-m", PUSH]
    finally:
        os.close(in_w)  # the end of its inbox: it exits
        stop_child(proc, [], timeout=60, what="the push")
        os.close(st_r)
    assert proc.returncode is not None
