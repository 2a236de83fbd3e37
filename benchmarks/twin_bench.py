"""Twin benchmarks: preparing a 2-minute recording, and concurrent live 720p25 twin streams.

- **prepare**: a reproducible 2-minute 1280x720 test recording (the astronaut, the English
  script read three times by espeak) becomes a pack with ``avatarcast avatars prepare``; wall
  and CPU time, against the bare decode of the same file (two decodes: the prepare reads it twice)
  and, with ``--one-process``, against the same prepare with the face pass in one process.
- **streams**: N ``avatarcast live --avatar <twin> --to rtmp://… --record …`` processes at once
  (``live_capacity.run_streams``: on time = 1 - late/frames from each final status line), and
  the same N with the drawn presenter in the same run, as the ratio's baseline.
- **cpu**: CPU ms per 720p frame of compose and compose + encode, in one process, twin against
  the drawn presenter (less sensitive to a loaded machine than the streams part).

``python benchmarks/twin_bench.py [--parts prepare,cpu,streams] [--one-process] [--streams 8]
[--seconds 30] [--twins benchtwin,OTHER]``;
JSON on stdout, progress on stderr. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import live_capacity as lc  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _make_video(video: Path, repeat: int, noise: float) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from avatarcast.twinprep.testmedia import make_test_video; "
        "make_test_video(Path(sys.argv[1]), width=1280, height=720, silence_s=5.0, "
        f"repeat={repeat}, noise={noise})"
    )
    subprocess.run([sys.executable, "-c", code, str(video)], check=True)


DECODE = (
    "import sys, av\n"
    "with av.open(sys.argv[1]) as c:\n"
    "    s = c.streams.video[0]\n"
    "    s.thread_type = 'AUTO'\n"
    "    for f in c.decode(s):\n"
    "        f.to_ndarray(format='rgb24')\n"
)


ONE_PROCESS = (
    "import sys; from pathlib import Path\n"
    "from avatarcast.twinprep.build import Consent, prepare_video\n"
    "prepare_video(Path(sys.argv[1]), name='benchone', root=Path(sys.argv[2]),\n"
    "    script=Path(sys.argv[3]).read_text(encoding='utf-8'), split_at=0,\n"
    "    consent=Consent(person='astronaut (public domain)', reference='public domain'))\n"
)


def part_prepare(
    work: Path, repeat: int, one_process: bool = False, noise: float = 0.0
) -> dict[str, Any]:
    video = work / "host.mp4"
    t0 = time.perf_counter()
    if video.is_file():
        log(f"prepare: reusing {video} (delete it for a new one)")
    else:
        _make_video(video, repeat, noise)
        log(f"prepare: test video made in {time.perf_counter() - t0:.0f} s")
    load_before = lc.loadavg()
    c0, w0 = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", DECODE, str(video)], check=True)
    decode_wall, decode_cpu = time.perf_counter() - w0, _children_cpu() - c0
    c0, w0 = _children_cpu(), time.perf_counter()
    argv = [sys.executable, "-m", "avatarcast.cli", "avatars", "prepare", "--video", str(video)]
    argv += ["--name", "benchtwin", "--root", str(work / "avatars")]
    argv += ["--person", "astronaut (public domain)", "--consent-ref", "public domain"]
    from avatarcast.twinprep.scripts import reading_script

    script = work / "script.txt"
    script.write_text(" ".join([reading_script("en")] * repeat), encoding="utf-8")
    argv += ["--script-file", str(script)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall, cpu = time.perf_counter() - w0, _children_cpu() - c0
    log(f"prepare: {wall:.1f} s wall, {cpu:.1f} CPU s (decode once {decode_wall:.1f} s)")
    one: dict[str, Any] = {}
    if one_process:  # the baseline: the same pack with the face pass in this one process
        c0, w0 = _children_cpu(), time.perf_counter()
        argv = [sys.executable, "-c", ONE_PROCESS, str(video), str(work / "avatars"), str(script)]
        subprocess.run(argv, check=True)
        one_wall, one_cpu = time.perf_counter() - w0, _children_cpu() - c0
        one = {"one_process_wall_s": round(one_wall, 1), "one_process_cpu_s": round(one_cpu, 1)}
        one["ratio_to_one_process"] = round(wall / one_wall, 2)
        packs = work / "avatars" / "benchtwin", work / "avatars" / "benchone"
        files = ("idle.mp4", "mask.png", "patches.npz")
        one["same_pack_files"] = all(
            (packs[0] / f).read_bytes() == (packs[1] / f).read_bytes() for f in files
        )
    return {
        "video_s": lc_probe(video),
        "load_1m_before": load_before[0],
        "load_1m_after": lc.loadavg()[0],
        "prepare_wall_s": round(wall, 1),
        "prepare_cpu_s": round(cpu, 1),
        "decode_wall_s": round(decode_wall, 1),
        "decode_cpu_s": round(decode_cpu, 1),
        "ratio_to_two_decodes": round(wall / (2 * decode_wall), 2),
        "goal_wall_s": 120,
        **one,
    }


def lc_probe(video: Path) -> float:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            str(video),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return round(float(out), 1)


def part_cpu(work: Path, frames: int, twins: list[str]) -> dict[str, Any]:
    """CPU ms per frame of composing and of composing + encoding 720p25, in this process, for
    each twin pack of ``twins`` and the drawn presenter (a talking mouth track; the same card
    and label); of it x264's own thread time, and the video's bitrate."""
    import numpy as np

    from avatarcast.avatar.animator import Animator
    from avatarcast.frames import SAMPLE_RATE, ProgrammeFrame, Sentence
    from avatarcast.output.encoder import Encoder
    from avatarcast.pipeline.build import load_presenter, validate
    from avatarcast.pipeline.layouts import make_view
    from avatarcast.pipeline.spec import ProgrammeOptions
    from avatarcast.programme.layout import Layout
    from avatarcast.programme.overlays import LabelConfig
    from avatarcast.voice.espeak import EspeakVoice
    from avatarcast.yuv import YuvFrame

    chunk = EspeakVoice("espeak-en-f").synthesize_blocking(
        Sentence(
            text="Big bright boxes of fresh papaya may be for you today.",
            lang="en",
            source="template",
        )
    )
    pcm = np.zeros(SAMPLE_RATE // 25, np.int16)
    out: dict[str, Any] = {}
    runs = [("twin" if i == 0 else f"twin:{t}", t) for i, t in enumerate(twins)]
    for label, avatar in [*runs, ("drawn", "daan")]:
        opts = ProgrammeOptions(catalog_path=lc.CATALOG, lang="en", avatar=avatar)
        resolved = validate(opts)
        presenter = load_presenter(avatar, opts)
        view = make_view(
            presenter,
            Layout("720p", "none"),
            fmt=resolved.fmt,
            lang="en",
            label=LabelConfig(),
            seller=None,
        )
        anim = Animator(fps=25)
        product = resolved.products[0]
        frame = YuvFrame(1280, 720)
        enc = Encoder(resolved.fmt)
        t_comp = t_all = 0.0
        video_bytes = 0
        for i in range(frames):
            if i % 60 == 0:
                anim.start_chunk(chunk, i)
            c0 = time.process_time()
            view.compositor.compose(frame, state=anim.state(i), product=product, caption=None)
            c1 = time.process_time()
            packets = enc.encode(ProgrammeFrame(pts=i, yuv=frame.buf.copy(), pcm=pcm))
            t_comp += c1 - c0
            t_all += time.process_time() - c0
            video_bytes += sum(len(p.data) for p in packets if p.kind == "video")
        enc.flush()
        out[label] = {
            "pack": avatar,
            "compose_ms_per_frame": round(1000 * t_comp / frames, 2),
            "compose_encode_ms_per_frame": round(1000 * t_all / frames, 2),
            "x264_ms_per_frame": round(1000 * enc.cpu_seconds["x264"] / frames, 2),
            "video_kbit_s": round(video_bytes * 8 * 25 / frames / 1000),
        }
        log(f"cpu: {label}: {out[label]}")
    out["frames"] = frames
    out["ratio_twin_to_drawn"] = round(
        out["twin"]["compose_encode_ms_per_frame"]
        / max(out["drawn"]["compose_encode_ms_per_frame"], 1e-9),
        2,
    )
    cores = len(os.sched_getaffinity(0))
    out["stream_limit_twin_compose_encode"] = round(
        cores * 40 / max(out["twin"]["compose_encode_ms_per_frame"], 1e-9), 1
    )
    return out


def part_streams(work: Path, n: int, seconds: float) -> dict[str, Any]:
    server = lc.RtmpServer(work / "nginx")
    server.start()
    base_live = list(lc.LIVE)
    rows: dict[str, Any] = {}
    try:
        for label, extra in (("twin", ["--avatar", "benchtwin"]), ("drawn", [])):
            lc.LIVE = [*base_live, *extra]
            log(f"streams: {n} x {label} for {seconds:.0f} s, load {lc.loadavg()}")
            row = lc.run_streams(server, n, seconds, work / label)
            log(
                f"streams: {label}: min on time {row['min_on_time']}, "
                f"{row['mean_cpu_s_per_media_s']} CPU s/media s per stream"
            )
            rows[label] = row
    finally:
        lc.LIVE = base_live
        server.stop()
    twin, drawn = rows["twin"], rows["drawn"]
    return {
        "n": n,
        "seconds": seconds,
        "twin": twin,
        "drawn": drawn,
        "cpu_ratio_twin_to_drawn": round(
            twin["mean_cpu_s_per_media_s"] / max(drawn["mean_cpu_s_per_media_s"], 1e-9), 2
        ),
        "goal_streams": 8,
    }


def _copy_drawn(work: Path) -> None:
    import shutil

    for drawn in ("daan", "mila"):
        dest = work / "avatars" / drawn
        if not dest.exists():
            shutil.copytree(ROOT / "assets" / "avatars" / drawn, dest)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="prepare,cpu,streams")
    ap.add_argument("--frames", type=int, default=300, help="frames for the cpu part")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=3, help="script readings in the test video")
    ap.add_argument("--work", type=Path)
    ap.add_argument(
        "--noise", type=float, default=0.0, help="camera grain of a new test video, 8-bit levels"
    )
    ap.add_argument(
        "--twins", default="benchtwin", help="twin packs for the cpu part (the first: 'twin')"
    )
    ap.add_argument(
        "--one-process", action="store_true", help="prepare again with one face process"
    )
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="twin-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "twin").mkdir(exist_ok=True)
    (work / "drawn").mkdir(exist_ok=True)
    os.environ["AVATARCAST_ASSETS"] = str(work / "avatars")
    res: dict[str, Any] = {"load_before": lc.loadavg(), "cores": len(os.sched_getaffinity(0))}
    parts = args.parts.split(",")
    if "prepare" in parts:
        res["prepare"] = part_prepare(work, args.repeat, args.one_process, args.noise)
        log(f"prepare: {res['prepare']}")
    if "cpu" in parts:
        _copy_drawn(work)
        res["cpu"] = part_cpu(work, args.frames, args.twins.split(","))
    if "streams" in parts:
        for drawn in ("daan", "mila"):
            dest = work / "avatars" / drawn
            if not dest.exists():
                import shutil

                shutil.copytree(ROOT / "assets" / "avatars" / drawn, dest)
        res["streams"] = part_streams(work, args.streams, args.seconds)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
