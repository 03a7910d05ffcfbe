// Flotilla's dashboard: plain JavaScript, no external resource. It polls
// the API every second with the token the user typed (kept in this tab's
// sessionStorage, never in the page).
"use strict";

const api = "/api/v1";
let token = sessionStorage.getItem("flotilla-token") || "";
let selected = null;        // id of the job shown in detail
let alertsNext = 0;         // next alert sequence number to fetch
const history = {};         // job id -> [{t, down, up, workers: {name: down}}]
const window_ = 120;        // samples the rate chart shows (one a second)
const colors = ["#2f80d1", "#e08a1e", "#2f9e5b", "#8e44ad", "#c9372c", "#16a2b8", "#7f8c8d", "#d35400"];
const workerColor = {};

const $ = (sel) => document.querySelector(sel);

function human(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + u[i];
}

function colorOf(name) {
  if (!(name in workerColor)) workerColor[name] = colors[Object.keys(workerColor).length % colors.length];
  return workerColor[name];
}

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const k in attrs || {}) {
    if (k === "style") e.style.cssText = attrs[k]; // CSSOM: allowed by the page's CSP
    else e.setAttribute(k, attrs[k]);
  }
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

class AuthError extends Error {}

async function call(method, path, body, contentType) {
  const headers = {};
  if (token) headers["Authorization"] = "Bearer " + token;
  if (contentType) headers["Content-Type"] = contentType;
  const resp = await fetch(api + path, { method, headers, body });
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (resp.status === 401) throw new AuthError(data && data.error || "the token was refused");
  if (!resp.ok) throw new Error(data && data.error || resp.statusText);
  return data;
}

function askToken(message) {
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token").focus();
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("flotilla-token", token);
  $("#login").hidden = true;
  refresh();
});

function say(text, isError) {
  const s = $("#status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

$("#add-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = $("#add-file").files[0];
  if (!f) { say("choose a .torrent file first", true); return; }
  const q = $("#add-paused").checked ? "?paused=true" : "";
  try {
    const job = await call("POST", "/torrents" + q, await f.arrayBuffer(), "application/x-bittorrent");
    say("added " + job.name + " as " + job.id);
    selected = job.id;
    $("#add-file").value = "";
    refresh();
  } catch (e) {
    if (e instanceof AuthError) askToken(e.message); else say(e.message, true);
  }
});

async function act(id, what) {
  try {
    if (what === "remove") {
      const del = confirm("Remove this torrent. Also delete its downloaded data?\n(OK: delete the data, Cancel: keep it)");
      await call("DELETE", "/torrents/" + id + (del ? "?delete_data=true" : ""));
      if (selected === id) selected = null;
    } else {
      await call("POST", "/torrents/" + id + "/" + what);
    }
    refresh();
  } catch (e) {
    if (e instanceof AuthError) askToken(e.message); else say(e.message, true);
  }
}

function button(label, id, what) {
  const b = el("button", label, { "data-action": what, "data-id": id });
  b.addEventListener("click", (ev) => { ev.stopPropagation(); act(id, what); });
  return b;
}

function renderTorrents(jobs) {
  const tb = $("#torrents tbody");
  tb.replaceChildren();
  $("#no-torrents").hidden = jobs.length > 0;
  for (const j of jobs) {
    const bar = el("span", null, { class: "bar " + j.state, title: (j.progress * 100).toFixed(1) + "%" });
    const fill = el("span");
    fill.style.width = (j.progress * 100).toFixed(1) + "%";
    bar.appendChild(fill);
    const prog = el("span");
    prog.append(bar, " " + (j.progress * 100).toFixed(1) + "%");
    const actions = el("span");
    if (j.state === "paused" || j.state === "failed") actions.appendChild(button("Resume", j.id, "resume"));
    else if (j.state !== "done" && j.state !== "removing") actions.appendChild(button("Pause", j.id, "pause"));
    actions.appendChild(button("Remove", j.id, "remove"));
    const state = j.state + (j.error ? ": " + j.error : "") + (j.waiting ? " (" + j.waiting + ")" : "");
    const tr = row([j.name, state, prog, human(j.down_rate) + "/s", human(j.up_rate) + "/s", j.eta || "-", j.ratio.toFixed(2), j.peers, actions]);
    tr.className = "job" + (j.id === selected ? " selected" : "");
    tr.dataset.id = j.id;
    tr.addEventListener("click", () => { selected = j.id; refresh(); });
    tb.appendChild(tr);
  }
}

function record(d) {
  const h = history[d.id] = history[d.id] || [];
  const workers = {};
  for (const w of d.workers) workers[w.name] = w.down_rate;
  h.push({ t: Date.now(), down: d.down_rate, up: d.up_rate, workers });
  if (h.length > window_) h.shift();
}

function drawChart(id) {
  const c = $("#chart"), g = c.getContext("2d"), h = history[id] || [];
  g.clearRect(0, 0, c.width, c.height);
  let top = 1;
  for (const p of h) top = Math.max(top, p.down, p.up);
  const x = (i) => i * c.width / (window_ - 1);
  const y = (v) => c.height - 4 - (v / top) * (c.height - 20);
  const line = (color, value, width) => {
    g.strokeStyle = color; g.lineWidth = width; g.beginPath();
    h.forEach((p, i) => { const v = value(p); if (i === 0) g.moveTo(x(i), y(v)); else g.lineTo(x(i), y(v)); });
    g.stroke();
  };
  const names = new Set();
  for (const p of h) for (const n in p.workers) names.add(n);
  for (const n of names) line(colorOf(n), (p) => p.workers[n] || 0, 1);
  line("#1b1f24", (p) => p.down, 2);
  line("#2f9e5b", (p) => p.up, 2);
  g.fillStyle = "#1b1f24";
  g.fillText("max " + human(top) + "/s", 4, 12);
  const legend = $("#chart-legend");
  legend.replaceChildren(el("span", "— down (total)  ", { style: "color:#1b1f24" }), el("span", "— up  ", { style: "color:#2f9e5b" }));
  for (const n of names) legend.appendChild(el("span", "— " + n + " down  ", { style: "color:" + colorOf(n) }));
}

const none = "#e3e6ea";   // a piece no swarm delivered yet
workerColor.disk = "#5b6770"; // pieces on disk when the run began

function renderPieces(id, m) {
  // One cell per piece (or per group of pieces on a large torrent: the
  // group's first delivered piece names it), coloured by the swarm that
  // delivered it (GET /torrents/{id}/pieces: a byte per piece, base64).
  const c = $("#piecemap"), g = c.getContext("2d");
  const raw = atob(m.sources || ""), n = raw.length;
  const cell = n <= 900 ? 10 : n <= 3600 ? 6 : n <= 14400 ? 3 : 2;
  const cols = Math.floor(c.width / cell), cells = Math.min(n, cols * Math.ceil(6000 / cols)), per = n / Math.max(cells, 1);
  const rows = Math.max(1, Math.ceil(cells / cols));
  if (c.height !== rows * cell) c.height = rows * cell;
  g.clearRect(0, 0, c.width, c.height);
  const used = new Set();
  for (let k = 0; k < cells; k++) {
    let src = 255;
    for (let i = Math.floor(k * per); i < Math.floor((k + 1) * per) && src === 255; i++) src = raw.charCodeAt(i);
    const name = src === 255 ? null : m.names[src] || "?";
    if (name) used.add(name);
    g.fillStyle = name ? colorOf(name) : none;
    g.fillRect((k % cols) * cell, Math.floor(k / cols) * cell, cell - 1, cell - 1);
  }
  c.dataset.sources = [...used].sort().join(" ");
  c.dataset.job = id;
  const legend = $("#piecemap-legend");
  legend.replaceChildren();
  for (const name of m.names) {
    if (used.has(name)) legend.appendChild(el("span", "■ " + (name === "disk" ? "on disk before this run" : name) + "  ", { style: "color:" + colorOf(name) }));
  }
  legend.appendChild(el("span", "■ not yet" + (m.running ? "" : " (not running: as the last run ended)"), { style: "color:" + none }));
}

function ms(d) {
  // "1m2.5s" / "41.2ms" / "512µs" (Go durations) to a short text.
  return d === undefined ? "-" : d.replace(/(\.\d)\d+/, "$1");
}

function clock(t) { return t ? new Date(t).toLocaleTimeString() : "-"; }

function trackerRow(t) {
  const l = t.latency;
  const lat = l && l.answers > 0 ? ms(l.p50) + " / " + ms(l.p90) + " / " + ms(l.max) : "-";
  const swarm = t.seeders === undefined && t.leechers === undefined ? "-" : (t.seeders ?? "?") + " / " + (t.leechers ?? "?");
  const overdue = t.overdue + (t.overdue_packets ? " (" + t.overdue_packets + " packets)" : "");
  const peers = el("span", t.peers_total || 0, { title: (t.peers || []).join("\n") });
  const err = el("span", t.last_error || "", { class: "error", title: t.last_error_at ? "at " + clock(t.last_error_at) : "" });
  return row([t.url, t.tier, clock(t.last_announce), clock(t.next_announce), lat, peers, swarm, overdue, err]);
}

function renderDetail(d) {
  $("#detail").hidden = false;
  $("#detail-name").textContent = d.name + " (" + d.id + ")";
  $("#detail-summary").textContent = d.state + " — " + human(d.bytes_done) + " of " + human(d.size) + ", " + d.pieces_done + " of " + d.pieces +
    " pieces; received " + human(d.downloaded) + ", sent " + human(d.uploaded) + "; data in " + d.data_dir;
  record(d);
  drawChart(d.id);
  const wb = $("#workers tbody"); wb.replaceChildren();
  for (const w of d.workers) {
    const name = el("span", w.name, { style: "color:" + colorOf(w.name) });
    wb.appendChild(row([name, w.state, w.peers, human(w.down_rate) + "/s", human(w.downloaded), w.pieces_delivered, w.hash_fails, w.banned]));
  }
  const tb = $("#trackers tbody"); tb.replaceChildren();
  for (const t of d.trackers) tb.appendChild(trackerRow(t));
  const fb = $("#files tbody"); fb.replaceChildren();
  for (const f of d.files) fb.appendChild(row([f.path, human(f.length)]));
}

function renderNodes(n) {
  const tb = $("#nodes tbody");
  tb.replaceChildren();
  if (!n.enabled) { $("#cluster-summary").textContent = "This coord serve runs outside a cluster."; return; }
  $("#cluster-summary").textContent = (n.joined ? "Joined" : "Not joined yet: " + (n.join_error || "")) + "; " + n.members.length + " members.";
  for (const m of n.members) {
    const name = m.name + (m.local ? " (this)" : "");
    if (m.jobs.length === 0) tb.appendChild(row([name, m.role, m.addr, "-", "idle", "", ""]));
    for (const j of m.jobs) tb.appendChild(row([name, m.role, m.addr, j.id, j.state, j.pieces_delivered, human(j.downloaded)]));
  }
}

function renderAlerts(list) {
  const ul = $("#alerts");
  for (const a of list) {
    const li = el("li", new Date(a.time).toLocaleTimeString() + " " + (a.job ? a.job + ": " : "") + a.message, { class: a.level });
    ul.prepend(li);
  }
  while (ul.children.length > 200) ul.lastChild.remove();
}

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const list = await call("GET", "/torrents");
    renderTorrents(list.torrents);
    if (selected && list.torrents.some((j) => j.id === selected)) {
      renderDetail(await call("GET", "/torrents/" + selected));
      renderPieces(selected, await call("GET", "/torrents/" + selected + "/pieces"));
    } else $("#detail").hidden = true;
    renderNodes(await call("GET", "/nodes"));
    const al = await call("GET", "/alerts?since=" + alertsNext);
    renderAlerts(al.alerts);
    alertsNext = al.next;
    if ($("#status").className !== "error") say("updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (e instanceof AuthError) askToken(token ? e.message : ""); else say(e.message, true);
  } finally {
    busy = false;
  }
}

refresh();
setInterval(refresh, 1000);
