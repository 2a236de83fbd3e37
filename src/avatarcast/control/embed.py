"""The embeddable HLS player page a shop puts on its product pages (in an iframe).

Plain HTML with the pinned hls.js (no build step). It starts muted, because browsers only
autoplay muted video, with a button to unmute; it shows that the presenter is AI-generated
(a badge on the video and a line under it, besides the label in every frame) and links the
product on air under the video. The player keeps its programme's aspect ratio, so a portrait
programme fills a phone's width. Where MSE is missing (iOS Safari) the browser's own HLS plays.

``window.avatarcast`` exposes what a test or a page script may read: ``latency`` (seconds from
the frame's media clock, via ``EXT-X-PROGRAM-DATE-TIME``, to the frame on screen), ``label``
(the AIGC date range of the playing segment) and ``errors``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["embed_html", "snippet"]


def embed_html(config: dict[str, Any]) -> str:
    """The page for ``config``: ``src`` (playlist URL), ``onAir`` (product URL), ``hlsJs``,
    ``lowLatency``."""
    script = json.dumps(config).replace("<", "\\u003c")
    return _PAGE.replace("__HLS_JS__", json.dumps(config["hlsJs"])[1:-1]).replace(
        "__CONFIG__", script
    )


def snippet(embed_url: str, *, portrait: bool = False) -> str:
    """An iframe to paste into a shop page."""
    ratio = "9 / 16" if portrait else "16 / 9"
    return (
        f'<iframe src="{embed_url}" title="Live shopping (AI-generated presenter)" '
        f'allow="autoplay; fullscreen" allowfullscreen '
        f'style="width:100%;max-width:{"420px" if portrait else "960px"};'
        f'aspect-ratio:{ratio};border:0"></iframe>'
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Live shopping: AI-generated presenter</title>
<style>
  :root { color-scheme: dark; font-family: system-ui, sans-serif; }
  body { margin: 0; background: #000; color: #fff; }
  .player { position: relative; width: 100%; aspect-ratio: var(--ar, 16 / 9);
            max-height: 85vh; margin: 0 auto; background: #000; }
  video { display: block; width: 100%; height: 100%; object-fit: contain; }
  .badge { position: absolute; top: 8px; right: 8px; padding: 3px 8px; border-radius: 4px;
           background: rgba(0, 0, 0, .75); font-size: 14px; font-weight: 600; }
  #unmute { position: absolute; left: 12px; bottom: 12px; min-height: 44px; padding: 0 16px;
            border: 0; border-radius: 22px; background: #fff; color: #000; font-size: 16px; }
  #unmute:focus-visible { outline: 3px solid #6cf; outline-offset: 2px; }
  #unmute[hidden] { display: none; }
  .below { padding: 10px 14px; background: #111; font-size: 16px; line-height: 1.4; }
  .below p { margin: 4px 0; }
  #product a { color: #9cf; font-weight: 600; }
  .note { color: #ccc; font-size: 14px; }
</style>
</head>
<body>
<main>
  <div class="player" id="player">
    <video id="video" muted autoplay playsinline aria-label="Live shopping stream"></video>
    <span class="badge" role="note">AI-generated</span>
    <button id="unmute" type="button">Unmute</button>
  </div>
  <div class="below">
    <p id="product" aria-live="polite"></p>
    <p class="note">The presenter in this live stream is AI-generated.</p>
  </div>
</main>
<script src="__HLS_JS__"></script>
<script>
(function () {
  var cfg = __CONFIG__;
  var video = document.getElementById("video");
  var button = document.getElementById("unmute");
  var state = window.avatarcast = { latency: null, label: null, errors: [], engine: null };
  var hls = null;
  function hex(s) {
    if (!s || s.slice(0, 2).toLowerCase() !== "0x") return s || null;
    var out = "";
    for (var i = 2; i < s.length; i += 2) out += String.fromCharCode(parseInt(s.substr(i, 2), 16));
    try { return decodeURIComponent(escape(out)); } catch (e) { return out; }
  }
  if (window.Hls && Hls.isSupported()) {
    state.engine = "hls.js";
    hls = new Hls({ lowLatencyMode: !!cfg.lowLatency, backBufferLength: 30 });
    hls.on(Hls.Events.ERROR, function (_, d) {
      state.errors.push(d.details);
      if (!d.fatal) return;
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else setTimeout(function () { hls.startLoad(); }, 1000);
    });
    hls.on(Hls.Events.LEVEL_UPDATED, function (_, d) {
      var ranges = d.details.dateRanges || {};
      var ids = Object.keys(ranges);
      for (var i = ids.length - 1; i >= 0; i--) {
        var attr = ranges[ids[i]].attr;
        if (attr && attr.CLASS === "org.avatarcast.aigc") {
          state.label = { text: attr["X-LABEL"] || null, aigc: hex(attr["X-AIGC"]) };
          break;
        }
      }
    });
    hls.loadSource(cfg.src);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    state.engine = "native";
    video.src = cfg.src;
  }
  video.addEventListener("loadedmetadata", function () {
    if (video.videoWidth && video.videoHeight) {
      document.getElementById("player").style.setProperty(
        "--ar", video.videoWidth + " / " + video.videoHeight);
    }
  });
  var started = video.play();
  if (started && started.catch) started.catch(function () {});
  button.addEventListener("click", function () {
    video.muted = !video.muted;
    if (!video.muted) { video.volume = 1; video.play(); }
    button.textContent = video.muted ? "Unmute" : "Mute";
  });
  var lastTime = -1, stuckSince = 0;
  setInterval(function () {
    if (hls && hls.playingDate) state.latency = (Date.now() - hls.playingDate.getTime()) / 1000;
    // a hole the playhead cannot cross (media after it is buffered): go on where it resumes
    var now = Date.now(), t = video.currentTime, b = video.buffered;
    if (video.paused || t !== lastTime) { lastTime = t; stuckSince = now; return; }
    if (now - stuckSince < 1500) return;
    for (var i = 0; i < b.length; i++) {
      if (b.start(i) > t + 0.05) {
        video.currentTime = b.start(i) + 0.05;
        state.errors.push("skippedHole");
        stuckSince = now;
        break;
      }
    }
  }, 200);
  function product() {
    fetch(cfg.onAir, { cache: "no-store" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (p) {
      var box = document.getElementById("product");
      if (!p || !p.title) { box.textContent = ""; return; }
      box.textContent = "";
      if (p.url) {
        var a = document.createElement("a");
        a.href = p.url; a.target = "_blank"; a.rel = "noopener"; a.textContent = p.title;
        box.appendChild(a);
      } else {
        box.textContent = p.title;
      }
    }).catch(function () {});
  }
  product();
  setInterval(product, 5000);
})();
</script>
</body>
</html>
"""
