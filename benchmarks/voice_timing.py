#!/usr/bin/env python3
"""How well espeak's stretched timings (``voice.timing``) fit voices whose true timings are known.

Two "unknown" voices whose real timings we have:

- **espeak-en-gb-m at 140 words/min**: another espeak voice at another tempo, so its word and
  phoneme events are the truth; the guide is the default ``espeak-en-f`` at 165.
- **the Piper-shaped tiny voice** (``scripts/make_mouth_models.py``): its model's own phoneme
  durations are the truth (a rhythm unlike espeak's: every vowel 7 steps, every consonant 4).

For each sentence: word-start error (ms) of the stretched words against the true ones (first
voice only: Piper reports no words), and per video frame (25 fps) the animator's mouth opening
from the stretched phonemes against the opening from the true phonemes: mean absolute
difference and correlation. Baselines in the same run: words spread evenly over the voiced span
by length (what a timing-free guess does), and the audio-energy mouth the animator used for
these voices before (correlation with the true-phoneme mouth).

Usage: ``python benchmarks/voice_timing.py [--models DIR]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from avatarcast.avatar.animator import track_for_chunk
from avatarcast.frames import Sentence, SpeechChunk
from avatarcast.voice.espeak import EspeakVoice
from avatarcast.voice.piper import PiperVoice
from avatarcast.voice.timing import stretch_timings, voiced_span_ms

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "This air fryer holds five and a half litres.",
    "The basket is dishwasher safe, and the timer runs to sixty minutes.",
    "Today it costs seventy nine euros, down from one hundred and nine.",
    "Preheating takes three minutes; after that, fries are ready in fifteen.",
    "It has eight presets, from chicken wings to a crisp baked potato.",
    "The projector fills a two metre wall in a dark room.",
    "Battery life is about two hours, enough for a long film.",
    "Pair it with your phone over bluetooth, or plug in a cable.",
    "The blender crushes ice in seconds, and the jug holds one and a half litres.",
    "Orders placed before ten tonight ship tomorrow morning.",
    "If you have a question, type it in the chat and I will answer it.",
    "Thanks for watching, and see you at the next product.",
]


def mouth(chunk: SpeechChunk) -> np.ndarray[Any, Any]:
    return np.array([k.mouth_open for k in track_for_chunk(chunk, 25, lang="en")])


def compare(truth: SpeechChunk, est: SpeechChunk) -> tuple[float, float]:
    a, b = mouth(truth), mouth(est)
    n = min(len(a), len(b))
    return float(np.abs(a[:n] - b[:n]).mean()), float(np.corrcoef(a[:n], b[:n])[0, 1])


def even_words(truth: SpeechChunk) -> list[int]:
    """Word starts spread over the voiced span in proportion to their length."""
    span = voiced_span_ms(truth.pcm)
    assert span is not None
    lengths = [len(w.word) + 1 for w in truth.words]
    edges = np.cumsum([0, *lengths])[:-1] / sum(lengths)
    return [round(span[0] + e * (span[1] - span[0])) for e in edges]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=Path)
    args = p.parse_args()
    models = args.models
    if models is None:
        models = Path(tempfile.mkdtemp(prefix="voice-bench-"))
        script = REPO / "scripts" / "make_mouth_models.py"
        subprocess.run([sys.executable, str(script), "--out", str(models)], check=True)
    guide_voice = EspeakVoice("espeak-en-f")
    other = EspeakVoice("espeak-en-gb-m", rate=140)
    piper = PiperVoice(models / "voice-tiny.onnx")
    word_err: list[float] = []
    even_err: list[float] = []
    rows: dict[str, list[tuple[float, float]]] = {"espeak-gb": [], "piper": [], "energy": []}
    for text in SENTENCES:
        s = Sentence(text=text, lang="en", source="template")
        guide = guide_voice.synthesize_blocking(s)
        for key, truth in (
            ("espeak-gb", other.synthesize_blocking(s)),
            ("piper", piper.synthesize_blocking(s)),
        ):
            phonemes, words = stretch_timings(guide, truth.pcm)
            est = replace(truth, phonemes=phonemes, words=words)
            rows[key].append(compare(truth, est))
            if key == "espeak-gb":
                energy = replace(truth, phonemes=(), words=())
                rows["energy"].append(compare(truth, energy))
                if len(words) == len(truth.words):
                    word_err += [
                        abs(w.start_ms - t.start_ms)
                        for w, t in zip(words, truth.words, strict=True)
                    ]
                    even = even_words(truth)
                    even_err += [
                        abs(e - t.start_ms) for e, t in zip(even, truth.words, strict=True)
                    ]
    report = {
        "sentences": len(SENTENCES),
        "word_start_error_ms": {
            "mean": round(float(np.mean(word_err)), 1),
            "p50": round(float(np.percentile(word_err, 50)), 1),
            "p95": round(float(np.percentile(word_err, 95)), 1),
            "max": round(float(np.max(word_err)), 1),
            "words": len(word_err),
        },
        "even_spread_word_error_ms": {
            "mean": round(float(np.mean(even_err)), 1),
            "p95": round(float(np.percentile(even_err, 95)), 1),
        },
    }
    for key, vals in rows.items():
        report[f"mouth_vs_truth_{key}"] = {
            "mean_abs_open": round(float(np.mean([v[0] for v in vals])), 3),
            "correlation": round(float(np.mean([v[1] for v in vals])), 3),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
