// daz status page: polls /api/status and redraws. No build step, no dependencies.
"use strict";

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.floor(seconds);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

function badge(status, text) {
  return `<span class="badge" data-status="${esc(status)}">${esc(text ?? status)}</span>`;
}

function timeOnly(iso) {
  return iso ? esc(iso.replace(/^.*T/, "").replace(/\.\d+Z$/, "Z")) : "";
}

function sectionError(section) {
  return section && !Array.isArray(section) && section.error
    ? `<p class="error">${esc(section.error)}</p>` : null;
}

function renderRooms(rooms) {
  const err = sectionError(rooms);
  if (err) return err;
  if (!rooms.length) return '<p class="muted">no rooms</p>';
  return rooms.map((r) => `
    <div class="card" data-room="${esc(r.name)}">
      <h3>${esc(r.name)} <span class="room-state">${badge(r.state, r.state.replace("_", " "))}</span></h3>
      <dl class="kv">
        <dt>uptime</dt><dd>${r.uptime_seconds === null ? "—" : duration(r.uptime_seconds)}</dd>
        <dt>in state</dt><dd>${duration(r.state_for_seconds)}</dd>
        <dt>reconnects</dt><dd>${esc(r.reconnects)}${r.flaps ? ` · ${esc(r.flaps)} flap(s)` : ""}</dd>
        <dt>last frame</dt><dd>${r.last_frame_age_seconds === null ? "—" : duration(r.last_frame_age_seconds) + " ago"}</dd>
        <dt>media</dt><dd>${r.media_playing ? "playing" : "idle"}</dd>
        <dt>outbox</dt><dd>${esc(r.outbox_depth)}</dd>
        ${r.kicked_reason ? `<dt>kicked</dt><dd>${esc(r.kicked_reason)}</dd>` : ""}
        ${r.reason ? `<dt>why</dt><dd class="room-reason">${esc(r.reason)}</dd>` : ""}
      </dl>
      ${renderChannel(r.channel)}
      <ul class="timeline">${(r.timeline || []).slice(-8).reverse().map((t) =>
        `<li>${timeOnly(t.time)} ${esc(t.from)} → <b>${esc(t.to)}</b>${t.reason ? ` <span class="muted">(${esc(t.reason)})</span>` : ""}</li>`
      ).join("")}</ul>
    </div>`).join("");
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.floor(seconds));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${Math.floor(s / 60)}:${ss}`;
}

// The room's channel replica (daz.cytube.channel.summary): users, what plays, playlist, poll.
function renderChannel(c) {
  if (!c) return '<p class="muted channel">channel: not joined yet</p>';
  if (c.error) return `<p class="error">${esc(c.error)}</p>`;
  const np = c.now_playing;
  const playing = !np ? '<span class="muted">nothing</span>'
    : `${esc(np.title)} <span class="muted">(${esc(np.type)})</span> · ` +
      (np.live ? "live" : `${clock(np.position)} / ${clock(np.seconds)}`) + (np.paused ? " · paused" : "");
  const names = c.users.shown.map((u) => `<span class="user${u.afk ? " afk" : ""}" title="rank ${esc(u.rank)}">${esc(u.name)}</span>`);
  const more = c.users.count > c.users.shown.length ? ` <span class="muted">+${c.users.count - c.users.shown.length}</span>` : "";
  const poll = !c.poll ? "" : `<dt>poll</dt><dd class="poll"><b>${esc(c.poll.title)}</b><ul>${c.poll.options.map((o) =>
    `<li>${esc(o.text)} <span class="muted">${o.count === null ? "?" : esc(o.count)}</span></li>`).join("")}</ul></dd>`;
  return `<dl class="kv channel" data-live="${c.live}">
      <dt>now playing</dt><dd class="now-playing">${playing}</dd>
      <dt>playlist</dt><dd class="playlist-length">${esc(c.playlist.length)} item(s)${c.playlist.locked ? "" : " · open"}</dd>
      <dt>users</dt><dd class="users">${esc(c.users.count)}: ${names.join(", ")}${more}</dd>
      ${poll}
      ${c.live ? "" : '<dt>replica</dt><dd class="muted">as before the disconnect</dd>'}
    </dl>`;
}

function renderQueue(queue) {
  if (queue === null) return '<p class="muted">no retry queue registered</p>';
  const err = sectionError(queue);
  if (err) return err;
  const rows = Object.entries(queue.depth || {}).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`);
  return `<div class="scroll"><table><tr><th>status</th><th>items</th></tr>${rows.join("") ||
    '<tr><td colspan="2" class="muted">empty</td></tr>'}</table></div>
    <p class="muted">oldest pending: ${duration(queue.oldest_pending_age_seconds)} ·
    dead letters in the last hour: ${esc(queue.dead_letters_last_hour)} · reclaims: ${esc(queue.reclaims)}</p>`;
}

function drawThroughput(samples) {
  const canvas = $("throughput");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600, h = canvas.clientHeight || 120;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, w, h);
  const series = [["succeeded_per_s", "#1f9d55"], ["failed_per_s", "#c98a00"], ["dead_per_s", "#d0342c"]];
  const max = Math.max(1, ...samples.flatMap((s) => series.map(([k]) => s[k])));
  ctx.fillStyle = "#6b7280"; ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(max.toFixed(1) + "/s", 4, 12);
  if (samples.length < 2) { ctx.fillText("collecting samples…", 4, h - 6); return; }
  const pad = 16, step = (w - 2 * pad) / (samples.length - 1);
  for (const [key, color] of series) {
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
    samples.forEach((s, i) => {
      const x = pad + i * step, y = h - pad - (s[key] / max) * (h - 2 * pad);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

function adminButton(label, url) {
  return `<button data-admin="${esc(url)}">${esc(label)}</button>`;
}

function renderDead(dead, admin) {
  if (dead === null) return '<p class="muted">no retry queue registered</p>';
  const err = sectionError(dead);
  if (err) return err;
  if (!dead.length) return '<p class="muted">none</p>';
  return `<div class="scroll"><table><tr><th>id</th><th>operation</th><th>attempts</th><th>last error</th>${admin ? "<th></th>" : ""}</tr>
    ${dead.map((d) => `<tr><td>${esc(d.id)}</td><td>${esc(d.operation_type)}</td><td>${esc(d.attempt)}</td>
      <td class="err">${esc(d.last_error)}</td>${admin ? `<td>${adminButton("replay", `/api/retry/${d.id}/replay`)}</td>` : ""}</tr>`).join("")}
    </table></div>`;
}

function renderBreakers(breakers, admin) {
  if (breakers === null) return '<p class="muted">no breakers registered</p>';
  const err = sectionError(breakers);
  if (err) return err;
  if (!breakers.length) return '<p class="muted">none</p>';
  return `<div class="scroll"><table><tr><th>breaker</th><th>state</th>${admin ? "<th></th>" : ""}</tr>
    ${breakers.map((b) => `<tr><td>${esc(b.name)}</td><td>${badge(b.state, String(b.state).replace("_", " "))}</td>
      ${admin ? `<td>${["open", "close", "reset"].map((a) => adminButton(a, `/api/breakers/${encodeURIComponent(b.name)}/${a}`)).join(" ")}</td>` : ""}</tr>`).join("")}
    </table></div>`;
}

function renderChecks(checks) {
  if (!checks.length) return '<p class="muted">no check has run yet</p>';
  return `<div class="scroll"><table><tr><th>component</th><th>status</th><th>measurements</th></tr>
    ${checks.map((c) => `<tr><td>${esc(c.component)}${c.critical ? "" : ' <span class="muted">(non-critical)</span>'}</td>
      <td>${badge(c.status)}</td>
      <td>${c.results.map((r) => `${esc(r.measurement)}: ${r.observed_value === null ? "" : esc(r.observed_value) + (r.observed_unit ? " " + esc(r.observed_unit) : "")}${r.output ? ` <span class="error">${esc(r.output)}</span>` : ""}`).join("<br>")}</td></tr>`).join("")}
    </table></div>`;
}

function renderInstances(instances) {
  const err = sectionError(instances);
  if (err) return err;
  if (!instances.length) return '<p class="muted">none</p>';
  const keys = Object.keys(instances[0]);
  return `<div class="scroll"><table><tr>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}</tr>
    ${instances.map((i) => `<tr>${keys.map((k) => `<td>${esc(i[k])}</td>`).join("")}</tr>`).join("")}</table></div>`;
}

async function adminAction(url) {
  const token = $("token").value;
  const out = $("admin-result");
  try {
    const resp = await fetch(url, { method: "POST", headers: { "X-Daz-Admin-Token": token } });
    const body = await resp.json();
    out.textContent = resp.ok ? `done: ${url}` : `failed (${resp.status}): ${body.error || ""}`;
  } catch (e) {
    out.textContent = "failed: " + e;
  }
  refresh();
}

document.addEventListener("click", (ev) => {
  const target = ev.target.closest("[data-admin]");
  if (target) adminAction(target.getAttribute("data-admin"));
});

async function refresh() {
  try {
    const resp = await fetch("/api/status", { cache: "no-store" });
    const s = await resp.json();
    const overall = $("overall");
    overall.dataset.status = s.status; overall.textContent = s.status;
    $("updated").textContent = "updated " + timeOnly(s.time) + " · up " + duration(s.uptime_seconds);
    $("rooms").innerHTML = renderRooms(s.rooms);
    $("queue").innerHTML = renderQueue(s.queue);
    drawThroughput(s.throughput || []);
    $("dead").innerHTML = renderDead(s.dead_letters, s.admin);
    $("breakers").innerHTML = renderBreakers(s.breakers, s.admin);
    $("checks").innerHTML = renderChecks(s.checks);
    $("instances-section").hidden = s.instances === null;
    if (s.instances !== null) $("instances").innerHTML = renderInstances(s.instances);
    $("admin-section").hidden = !s.admin;
  } catch (e) {
    const overall = $("overall");
    overall.dataset.status = "fail"; overall.textContent = "unreachable";
    $("updated").textContent = "daz did not answer: " + e;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
