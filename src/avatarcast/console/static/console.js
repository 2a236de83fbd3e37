// avatarcast console: WHEP previews, live updates over one SSE connection, heartbeats and
// the wall's keyboard. Plain ES module, no build step; htmx does the forms and buttons.

const body = document.body;
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const statusRegion = document.getElementById("status");
const alertRegion = document.getElementById("alerts");

// --- htmx: refusals go to the alert region; a lost session goes back to sign-in -----------
document.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  if (status === 401) {
    location.href = "/console/sign-in?reason=" + encodeURIComponent("your session ended");
    event.detail.shouldSwap = false;
  } else if (status >= 400) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
    event.detail.target = alertRegion;
  } else if (event.detail.target === statusRegion || event.detail.target === alertRegion) {
    alertRegion.textContent = "";
  }
});

// --- a refusal about one field is shown next to it (the server names it in X-Field) -------
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.detail.elt;
  if (!(form instanceof HTMLFormElement)) return;
  for (const box of form.querySelectorAll("[data-error-for]")) box.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const xhr = event.detail.xhr;
  const field = xhr?.getResponseHeader("X-Field");
  if (xhr.status < 400 || !field) return;
  const box = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
  if (!box) return;
  const parsed = new DOMParser().parseFromString(xhr.responseText, "text/html");
  box.textContent = parsed.body.textContent.trim();
  const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
  if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
});

// --- live updates ----------------------------------------------------------------------------
function containers(streamId) {
  return document.querySelectorAll(`[data-stream="${CSS.escape(streamId)}"]`);
}

function applyHealth(h) {
  for (const box of containers(h.id)) {
    if (box.tagName === "VIDEO") continue;
    for (const cell of box.querySelectorAll("[data-h]")) {
      const value = h[cell.dataset.h];
      cell.textContent = value === null || value === undefined || value === "" ?
        (cell.dataset.h === "duty_name" ? "nobody" : "–") : String(value);
      if (cell.dataset.h === "state_words") cell.dataset.state = h.state;
    }
    if (box.classList.contains("tile")) {
      box.dataset.state = h.state;
      box.dataset.duty = h.duty || "";
    }
  }
  for (const video of document.querySelectorAll(`video[data-stream="${CSS.escape(h.id)}"]`)) {
    const was = video.dataset.state;
    video.dataset.state = h.state;
    if (h.state === "stopped" || h.state === "failed") {
      if (was !== h.state) endPreview(video, was === "stopped" ? "Not on air" : "Stream ended");
    } else if (!video.pc) {
      video.dataset.ended = "false";
      play(video);
    }
  }
  updateHeartbeatLabels();
}

function item(html) {
  const li = document.createElement("li");
  li.innerHTML = html;
  return li;
}

function esc(text) {
  const span = document.createElement("span");
  span.textContent = text === undefined || text === null ? "" : String(text);
  return span.innerHTML;
}

function prepend(list, li, max = 200) {
  list.prepend(li);
  while (list.children.length > max) list.lastElementChild.remove();
}

function now() {
  return new Date().toTimeString().slice(0, 8);
}

function onLine(d) {
  const list = document.getElementById("transcript-" + d.stream_id);
  if (list) {
    const facts = (d.facts || []).length ? `<span class="facts">facts: ${esc(d.facts.join(", "))}</span>` : "";
    prepend(list, item(`<span class="badge source-${esc(d.source)}">${esc(d.source)}</span>` +
      `<span class="text">${esc(d.text)}</span>${facts}<time>${now()}</time>`));
    list.firstElementChild.classList.add("line");
  }
}

function onRefusal(d) {
  const list = document.getElementById("refusals-" + d.stream_id);
  if (!list) return;
  const reasons = Array.isArray(d.reasons) ? d.reasons.join("; ") : (d.reasons || "");
  prepend(list, item(`<span class="text">${esc(d.text)}</span> <span class="reason">${esc(reasons)}</span> <time>${now()}</time>`));
}

function onEvent(d, alert) {
  const list = document.getElementById("events-" + d.stream_id);
  const detail = Object.entries(d).filter(([k]) => !["stream_id", "kind"].includes(k))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  if (list) prepend(list, item(`<span class="kind">${esc(d.kind)}</span> <span class="muted">${esc(detail.slice(0, 160))}</span> <time>${now()}</time>`));
  if (alert) {
    const sel = `[data-stream="${CSS.escape(d.stream_id)}"]`;
    const name = document.querySelector(`${sel} h2 a, ${sel} th a`)?.textContent ||
      (body.dataset.page === "stream" ? document.querySelector("h1")?.textContent : "") || d.stream_id;
    const words = { crashed: "crashed", failed: "failed", restarted: "restarted after a crash",
      safe_mode_entered: "went to its safe slate: no supervisor heartbeat", stop: "stopped: heartbeats lapsed" };
    const said = d.kind === "safe_mode_entered" && d.reason === "no_supervisor" ?
      "waits on its slate for a supervisor's first heartbeat" : words[d.kind] || d.kind;
    alertRegion.textContent = `Stream ${name.replace(/^Stream /, "")} ${said} at ${now()}.`;
  }
}

function onChat(d) {
  const list = document.getElementById("chat-" + d.stream_id);
  for (const fate of d.fates || []) {
    if (!list) continue;
    const id = "chat-msg-" + fate.id;
    const reason = fate.reason ? ` (${esc(fate.reason)})` : "";
    const block = list.dataset.canBlock === "true" ?
      ` <button type="button" class="small" hx-post="/console/streams/${esc(d.stream_id)}/chat/${encodeURIComponent(fate.id)}/block" hx-target="#status" aria-label="Block the message from ${esc(fate.name || fate.viewer_id)}">Block</button>` : "";
    const li = item(`<strong>${esc(fate.name || fate.viewer_id)}</strong>: ${esc(fate.text)} ` +
      `<span class="fate">${esc(fate.outcome)}${reason}</span>${block}`);
    li.id = id;
    document.getElementById(id)?.remove();
    prepend(list, li);
    if (window.htmx) window.htmx.process(li);
  }
}

function onBlocked(d) {
  document.getElementById("chat-msg-" + d.message_id)?.remove();
}

// the worker pushes the whole approval queue whenever it changes (held, approved, rejected,
// withdrawn): the box shows exactly that list
function onAnswers(d) {
  const box = document.getElementById("approvals-" + d.stream_id);
  if (!box) return;
  const sid = encodeURIComponent(d.stream_id);
  const items = (d.items || []).map((a) => {
    const id = encodeURIComponent(a.answer_id);
    const facts = (a.facts || []).length ? `<p class="facts">facts: ${esc(a.facts.join(", "))}</p>` : "";
    const button = (verdict, label) => `<button type="button" hx-post="/console/streams/${sid}/answers/${id}/${verdict}" ` +
      `hx-target="#status" data-verdict="${verdict}">${label}</button>`;
    return `<li class="answer" data-answer="${esc(a.answer_id)}" data-stream="${esc(d.stream_id)}">` +
      `<p><strong>${esc((a.askers || []).join(", "))}</strong> asked: ${esc(a.question)}</p>` +
      `<p>Answer: ${esc(a.answer)}</p>${facts}<div class="buttons">` +
      button("approve", "Approve (a)") + button("reject", "Reject (r)") + "</div></li>";
  });
  box.innerHTML = `<ol class="queue">${items.join("") || '<li class="muted">No answer is waiting.</li>'}</ol>`;
  if (window.htmx) window.htmx.process(box);
}

function openEvents() {
  if (body.dataset.page === "signin" || !csrf) return;
  const query = new URLSearchParams({ streams: body.dataset.streams || "", after: body.dataset.lastEvent || "0" });
  const source = new EventSource("/console/events?" + query);
  const on = (name, fn) => source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  on("health", applyHealth);
  on("line", onLine);
  on("refusal", onRefusal);
  on("event", (d) => onEvent(d, false));
  on("alert", (d) => onEvent(d, true));
  on("chat", onChat);
  on("chat_blocked", onBlocked);
  on("answers", onAnswers);
  source.addEventListener("signout", () => {
    source.close();
    location.href = "/console/sign-in?reason=" + encodeURIComponent("your session ended or its API key was revoked");
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      fetch("/console/streams", { redirect: "manual" }).then((r) => {
        if (r.type === "opaqueredirect" || r.status === 401) location.href = "/console/sign-in";
        else setTimeout(openEvents, 2000);
      }).catch(() => setTimeout(openEvents, 2000));
    }
  });
}

// --- WHEP previews ---------------------------------------------------------------------------
async function play(video) {
  if (video.pc || video.dataset.ended === "true") return;
  const note = document.querySelector(`[data-video-note="${CSS.escape(video.dataset.stream)}"]`);
  const say = (text) => { if (note) note.textContent = text; };
  const pc = new RTCPeerConnection({ iceServers: [] });
  video.pc = pc;
  video.dataset.ended = "false";
  const stream = new MediaStream();
  video.srcObject = stream;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (event) => { stream.addTrack(event.track); video.play().catch(() => {}); };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") say("");
    if (pc.connectionState === "failed" || pc.connectionState === "closed") retry(video, "Reconnecting…");
  };
  try {
    say("Connecting…");
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
      setTimeout(resolve, 2000);
    });
    const response = await fetch(video.dataset.whep, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: "Bearer " + video.dataset.token },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) return retry(video, response.status === 503 ? "Not on air yet" : "Preview refused");
    video.session = new URL(response.headers.get("Location"), location.href).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  } catch (error) {
    retry(video, "Preview error: " + error);
  }
}

function retry(video, text) {
  const pc = video.pc;
  video.pc = null;
  if (pc) pc.close();
  const note = document.querySelector(`[data-video-note="${CSS.escape(video.dataset.stream)}"]`);
  if (note) note.textContent = text;
  if (video.dataset.ended !== "true") setTimeout(() => { if (!video.pc && video.dataset.ended !== "true") play(video); }, 3000);
}

function endPreview(video, text) {
  video.dataset.ended = "true";
  const pc = video.pc;
  video.pc = null;
  if (pc) pc.close();
  const note = document.querySelector(`[data-video-note="${CSS.escape(video.dataset.stream)}"]`);
  if (note) note.textContent = text;
  const tile = video.closest(".tile");
  if (tile) tile.dataset.state = "stopped";
}

function resumePreviews() {
  for (const video of document.querySelectorAll("video[data-whep]")) {
    if (video.dataset.state === "stopped") endPreview(video, "Not on air");
    else if (!video.pc) play(video);
  }
}

addEventListener("pagehide", () => {
  for (const video of document.querySelectorAll("video[data-whep]")) {
    if (video.session) fetch(video.session, { method: "DELETE", headers: { Authorization: "Bearer " + video.dataset.token }, keepalive: true });
  }
});

// --- heartbeats (the wall) -------------------------------------------------------------------
const summary = document.getElementById("hb-summary");
const hb = {
  every: Number(summary?.dataset.heartbeatMs || 20000),
  activity: Number(summary?.dataset.activityMs || 300000),
  me: summary?.dataset.me || "",
  lastActivity: Date.now(),
  lastSent: 0,
  stopped: false,
  sent: 0,
  inflight: 0,
};
window.consoleHeartbeats = hb;

function onDutyTiles() {
  return hb.me ? [...document.querySelectorAll(".tile")].filter((t) => t.dataset.duty === hb.me && t.dataset.state !== "stopped") : [];
}

function updateHeartbeatLabels() {
  if (!summary) return;
  const sending = !hb.stopped;
  for (const tile of document.querySelectorAll(".tile")) {
    const label = tile.querySelector("[data-hb]");
    const mine = hb.me && tile.dataset.duty === hb.me;
    label.textContent = !mine ? "Heartbeats: off (not your duty)" : sending ? "Heartbeats: sending" : "Heartbeats: stopped";
    label.classList.toggle("on", Boolean(mine && sending));
  }
  const tiles = onDutyTiles().length;
  summary.textContent = tiles === 0 ? "Heartbeats: off" :
    sending ? `Heartbeats: sending for ${tiles} stream(s)` : "Heartbeats: stopped (still watching?)";
}

function stopHeartbeats() {
  if (hb.stopped) return;
  hb.stopped = true;
  updateHeartbeatLabels();
  const dialog = document.getElementById("still-watching");
  if (dialog && !dialog.open && onDutyTiles().length) dialog.showModal();
}

async function beat(tiles) {
  hb.lastSent = Date.now();
  await Promise.all(tiles.map(async (tile) => {
    if (hb.stopped) return;
    hb.sent += 1;
    hb.inflight += 1;
    try {
      const response = await fetch(`/console/streams/${tile.dataset.stream}/heartbeat`, {
        method: "POST", headers: { "X-CSRF-Token": csrf },
      });
      if (response.status === 401) location.href = "/console/sign-in";
    } finally {
      hb.inflight -= 1;
    }
  }));
}

function tickHeartbeats() {
  const tiles = onDutyTiles();
  if (!tiles.length) return updateHeartbeatLabels();
  const idle = Date.now() - hb.lastActivity >= hb.activity;
  if (hb.stopped || document.visibilityState !== "visible" || idle) return stopHeartbeats();
  if (Date.now() - hb.lastSent >= hb.every) beat(tiles);
  updateHeartbeatLabels();
}

if (summary) {
  for (const type of ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"]) {
    addEventListener(type, () => { if (!hb.stopped) hb.lastActivity = Date.now(); }, { passive: true });
  }
  document.addEventListener("visibilitychange", () => { if (document.visibilityState !== "visible") stopHeartbeats(); });
  document.getElementById("still-yes")?.addEventListener("click", () => {
    hb.stopped = false;
    hb.lastActivity = Date.now();
    document.getElementById("still-watching").close();
    beat(onDutyTiles());
    updateHeartbeatLabels();
  });
  document.addEventListener("duty", (event) => {
    const tile = document.querySelector(`.tile[data-stream="${CSS.escape(event.detail.stream)}"]`);
    if (!tile) return;
    tile.dataset.duty = event.detail.on ? hb.me : "";
    hb.stopped = false;
    hb.lastActivity = Date.now();
    if (event.detail.on) beat([tile]);
    updateHeartbeatLabels();
  });
  setInterval(tickHeartbeats, 1000);
}

// --- the wall's buttons and keyboard --------------------------------------------------------
document.addEventListener("htmx:afterRequest", (event) => {
  const button = event.detail.elt;
  if (!event.detail.successful || !button?.dataset?.action) return;
  const tile = button.closest(".tile");
  if (tile && (button.dataset.action === "mute" || button.dataset.action === "unmute")) {
    tile.dataset.muted = String(button.dataset.action === "mute");
  }
});


// a form whose action changed a list (chat sources) is emptied: a token never stays in the page
document.addEventListener("chatsources", () => {
  for (const form of document.querySelectorAll('form[data-reset-on="chatsources"]')) form.reset();
});

document.addEventListener("click", (event) => {
  const button = event.target.closest('[data-action="solo"]');
  if (!button) return;
  const tile = button.closest(".tile");
  const on = button.getAttribute("aria-pressed") !== "true";
  for (const other of document.querySelectorAll(".tile")) {
    const video = other.querySelector("video");
    const solo = other.querySelector('[data-action="solo"]');
    const mine = other === tile && on;
    if (video) video.muted = !mine;
    if (solo) solo.setAttribute("aria-pressed", String(mine));
  }
});

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable ||
    ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

let currentTile = null;
document.addEventListener("focusin", (event) => {
  const tile = event.target.closest?.(".tile");
  if (tile) currentTile = tile;
});

function firstAnswer(verdict) {
  const scope = currentTile?.querySelector(".approvals") ? currentTile : document;
  return scope.querySelector(`.answer [data-verdict="${verdict}"]`);
}

document.addEventListener("keydown", (event) => {
  if (body.dataset.page !== "wall" && body.dataset.page !== "stream") return;
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
  if (document.querySelector("dialog[open]") && event.key !== "?") return;
  const key = event.key;
  const tile = currentTile;
  if (/^[1-9]$/.test(key)) {
    const target = document.querySelector(`.tile[data-index="${key}"]`);
    if (target) { target.focus(); currentTile = target; event.preventDefault(); }
  } else if (key === "m" && tile) {
    tile.querySelector(`[data-action="${tile.dataset.muted === "true" ? "unmute" : "mute"}"]`)?.click();
  } else if (key === "s" && tile) {
    tile.querySelector(".say input")?.focus();
    event.preventDefault();
  } else if (key === "k" && tile) {
    tile.querySelector('[data-action="kill"]')?.click();
  } else if (key === "a" || key === "r") {
    firstAnswer(key === "a" ? "approve" : "reject")?.click();
  } else if (key === "?") {
    const help = document.getElementById("help");
    if (help && !help.open) help.showModal();
  }
});

// --- start -----------------------------------------------------------------------------------
openEvents();
updateHeartbeatLabels();
// after "load": a playing <video> holds the page's load event until it has a frame
if (document.readyState === "complete") resumePreviews();
else addEventListener("load", resumePreviews);
