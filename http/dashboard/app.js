/*
 * The midge dashboard: plain JavaScript over the broker's /api/v1 (no
 * build step, no library). Credentials: the browser's Basic login, or a
 * bearer token typed into the header (kept for this tab only).
 */
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY = 120; /* points per chart: two minutes at one a second */

function authHeaders() {
  const t = sessionStorage.getItem("midge-token");
  return t ? { Authorization: "Bearer " + t } : {};
}

function showError(text) {
  const e = $("error");
  e.textContent = text || "";
  e.hidden = !text;
}

async function api(path, options) {
  const opts = Object.assign({ headers: authHeaders(), credentials: "same-origin" }, options || {});
  const res = await fetch(path, opts);
  const body = res.headers.get("Content-Type")?.startsWith("application/json") ? await res.json() : null;
  if (!res.ok) {
    throw new Error((body && body.error) || res.status + " " + res.statusText);
  }
  return body;
}

function fmt(n, digits) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + " M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + " k";
  return n.toFixed(digits === undefined ? 0 : digits);
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

/* ---- charts: one canvas, one or two series, drawn by hand ---- */

class Chart {
  constructor(canvas, colors) {
    this.canvas = canvas;
    this.colors = colors;
    this.series = colors.map(() => []);
  }
  push(values) {
    values.forEach((v, i) => {
      const s = this.series[i];
      s.push(v);
      if (s.length > HISTORY) s.shift();
    });
    /* the last values, for people reading the page with tools */
    this.canvas.dataset.last = values.map((v) => (v === null ? "" : v.toFixed(3))).join(",");
    this.canvas.dataset.points = String(this.series[0].length);
    this.draw();
  }
  draw() {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const w = c.clientWidth || 420, h = c.clientHeight || 140;
    if (c.width !== Math.round(w * ratio)) {
      c.width = Math.round(w * ratio);
      c.height = Math.round(h * ratio);
    }
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    let max = 0;
    for (const s of this.series) for (const v of s) if (v !== null && v > max) max = v;
    max = max > 0 ? max * 1.15 : 1;
    g.strokeStyle = "#e3e6eb";
    g.fillStyle = "#6b7380";
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    for (let k = 0; k <= 2; k++) {
      const y = 6 + ((h - 18) * k) / 2;
      g.beginPath();
      g.moveTo(36, y);
      g.lineTo(w - 4, y);
      g.stroke();
      g.fillText(fmt(max * (1 - k / 2), max < 10 ? 1 : 0), 2, y + 4);
    }
    this.series.forEach((s, i) => {
      g.strokeStyle = this.colors[i];
      g.lineWidth = 2;
      g.beginPath();
      let started = false;
      s.forEach((v, k) => {
        if (v === null) return;
        const x = 36 + ((w - 40) * (k + HISTORY - s.length)) / (HISTORY - 1);
        const y = 6 + (h - 18) * (1 - v / max);
        if (started) g.lineTo(x, y);
        else g.moveTo(x, y);
        started = true;
      });
      g.stroke();
    });
  }
}

const BLUE = "#2f6fdb", ORANGE = "#d9822b";
const charts = {
  connections: new Chart($("chart-connections"), [BLUE]),
  rate: new Chart($("chart-rate"), [BLUE, ORANGE]),
  drops: new Chart($("chart-drops"), [ORANGE]),
  latency: new Chart($("chart-latency"), [BLUE, ORANGE]),
  memory: new Chart($("chart-memory"), [BLUE]),
};

let last = null;

async function refreshStats() {
  const s = await api("/api/v1/stats");
  const secs = last ? (s.time_ms - last.time_ms) / 1000 : 0;
  const rate = (now, before) => (secs > 0 ? Math.max(0, now - before) / secs : null);
  const rin = last ? rate(s.messages.publish_received, last.messages.publish_received) : null;
  const rout = last ? rate(s.messages.publish_sent, last.messages.publish_sent) : null;
  const rdrop = last ? rate(s.messages.dropped, last.messages.dropped) : null;
  last = s;
  $("t-connected").textContent = fmt(s.clients.connected);
  $("t-sessions").textContent = fmt(s.clients.sessions);
  $("t-in").textContent = fmt(rin, 1);
  $("t-out").textContent = fmt(rout, 1);
  $("t-drops").textContent = fmt(rdrop, 1);
  $("t-latency").textContent = s.delivery_latency.count
    ? s.delivery_latency.p50_ms.toFixed(2) + " / " + s.delivery_latency.p99_ms.toFixed(2) + " ms"
    : "–";
  $("t-memory").textContent = fmt(s.process.resident_bytes / 1048576, 1) + " MiB";
  $("t-retained").textContent = fmt(s.state.retained);
  charts.connections.push([s.clients.connected]);
  charts.rate.push([rin, rout]);
  charts.drops.push([rdrop]);
  charts.latency.push(s.delivery_latency.count ? [s.delivery_latency.p50_ms, s.delivery_latency.p99_ms] : [null, null]);
  charts.memory.push([s.process.resident_bytes / 1048576]);
}

async function refreshBroker() {
  const b = await api("/api/v1/broker");
  $("broker-info").textContent =
    "v" + b.version + " · node " + b.node + " · up " + Math.round(b.uptime_seconds) + " s · " +
    b.listeners.map((l) => l.address + ":" + l.port + (l.tls ? " (TLS)" : "")).join(", ");
}

/* ---- clients ---- */

let clientsCursor = null;

async function loadClients(cursor) {
  const q = new URLSearchParams({ limit: "50" });
  const prefix = $("clients-search").value.trim();
  if (prefix) q.set("clientid", prefix);
  if ($("clients-connected").checked) q.set("connected", "true");
  if (cursor) q.set("cursor", cursor);
  const page = await api("/api/v1/clients?" + q);
  const body = $("clients-body");
  body.textContent = "";
  for (const c of page.data) {
    const tr = document.createElement("tr");
    tr.dataset.clientid = c.clientid;
    const id = cell(tr, "");
    const a = document.createElement("a");
    a.textContent = c.clientid;
    a.addEventListener("click", () => showClient(c.clientid));
    id.appendChild(a);
    cell(tr, c.username);
    cell(tr, c.protocol ? "MQTT " + c.protocol : "");
    cell(tr, c.connected ? c.peer_addr + ":" + c.peer_port + (c.tls ? " TLS" : "") : "offline");
    cell(tr, c.subscriptions, "num");
    cell(tr, c.inflight, "num");
    cell(tr, c.queued, "num");
    const actions = cell(tr, "");
    const kick = document.createElement("button");
    kick.className = "kick";
    kick.textContent = c.connected ? "Kick" : "Discard";
    kick.title = c.connected ? "Disconnect (MQTT 5: reason 0x98)" : "Remove the session";
    kick.addEventListener("click", () => kickClient(c.clientid, !c.connected));
    actions.appendChild(kick);
    body.appendChild(tr);
  }
  clientsCursor = page.meta.cursor;
  $("clients-next").disabled = !page.meta.hasnext;
  $("clients-count").textContent = page.meta.total + " sessions in all";
}

async function showClient(id) {
  const c = await api("/api/v1/clients/" + encodeURIComponent(id));
  const d = $("client-detail");
  d.textContent = JSON.stringify(c, null, 2);
  d.hidden = false;
}

async function kickClient(id, discard) {
  if (!window.confirm((discard ? "Remove the session of " : "Disconnect ") + id + "?")) return;
  try {
    await api("/api/v1/clients/" + encodeURIComponent(id) + (discard ? "?session=discard" : ""), { method: "DELETE" });
    showError("");
  } catch (e) {
    showError("kick " + id + ": " + e.message);
  }
  setTimeout(() => loadClients(null).catch((e) => showError(e.message)), 300);
}

/* ---- subscriptions, topics, retained ---- */

async function loadSubscriptions() {
  const q = new URLSearchParams({ limit: "200" });
  if ($("subs-client").value) q.set("clientid", $("subs-client").value);
  if ($("subs-filter").value) q.set("filter", $("subs-filter").value);
  const page = await api("/api/v1/subscriptions?" + q);
  const body = $("subs-body");
  body.textContent = "";
  for (const s of page.data) {
    const tr = document.createElement("tr");
    cell(tr, s.clientid);
    cell(tr, s.filter);
    cell(tr, s.qos, "num");
    cell(tr, s.no_local ? "yes" : "");
    cell(tr, s.retain_as_published ? "yes" : "");
    cell(tr, s.subscription_id);
    body.appendChild(tr);
  }
}

async function loadTopics() {
  const page = await api("/api/v1/topics?limit=20");
  const body = $("topics-body");
  body.textContent = "";
  for (const t of page.data) {
    const tr = document.createElement("tr");
    cell(tr, t.topic + (t.truncated ? "…" : ""));
    cell(tr, fmt(t.rate, 1), "num");
    cell(tr, fmt(t.messages), "num");
    body.appendChild(tr);
  }
}

async function loadRetained() {
  const filter = $("retained-filter").value || "#";
  const page = await api("/api/v1/retained?limit=200&filter=" + encodeURIComponent(filter));
  const body = $("retained-body");
  body.textContent = "";
  for (const m of page.data) {
    const tr = document.createElement("tr");
    cell(tr, m.topic);
    cell(tr, m.qos, "num");
    cell(tr, m.payload_len, "num");
    cell(tr, m.payload_utf8 !== undefined ? m.payload_utf8 : "base64: " + m.payload, "payload");
    const actions = cell(tr, "");
    const del = document.createElement("button");
    del.className = "kick";
    del.textContent = "Delete";
    del.addEventListener("click", async () => {
      if (!window.confirm("Delete the retained message of " + m.topic + "?")) return;
      try {
        await api("/api/v1/retained/" + m.topic.split("/").map(encodeURIComponent).join("/"), { method: "DELETE" });
        await loadRetained();
      } catch (e) {
        showError(e.message);
      }
    });
    actions.appendChild(del);
    body.appendChild(tr);
  }
  $("retained-count").textContent = page.meta.matched + " matched";
}

/* ---- live events: Server-Sent Events read with fetch, so a bearer token works too ---- */

let eventsAbort = null;

async function followEvents() {
  stopEvents();
  const prefix = $("events-prefix").value;
  eventsAbort = new AbortController();
  $("events-start").disabled = true;
  $("events-stop").disabled = false;
  $("events-state").textContent = "following";
  try {
    const res = await fetch("/api/v1/events?prefix=" + encodeURIComponent(prefix), {
      headers: authHeaders(), credentials: "same-origin", signal: eventsAbort.signal,
    });
    if (!res.ok) throw new Error("events: " + res.status);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let name = "", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (name) addEvent(name, data);
      }
    }
    $("events-state").textContent = "stream ended";
  } catch (e) {
    if (e.name !== "AbortError") $("events-state").textContent = e.message;
  }
  $("events-start").disabled = false;
  $("events-stop").disabled = true;
}

function addEvent(name, data) {
  const list = $("events-list");
  const li = document.createElement("li");
  const n = document.createElement("span");
  n.className = "name";
  n.textContent = name;
  li.appendChild(n);
  li.appendChild(document.createTextNode(data));
  list.insertBefore(li, list.firstChild);
  while (list.childNodes.length > 200) list.removeChild(list.lastChild);
}

function stopEvents() {
  if (eventsAbort) eventsAbort.abort();
  eventsAbort = null;
  $("events-state").textContent = "";
}

/* ---- tabs and timers ---- */

const loaders = {
  overview: () => Promise.resolve(),
  clients: () => loadClients(null),
  subscriptions: loadSubscriptions,
  topics: loadTopics,
  retained: loadRetained,
  events: () => Promise.resolve(),
};

function showTab(name) {
  if (!loaders[name]) name = "overview";
  document.querySelectorAll(".tab").forEach((s) => (s.hidden = s.id !== name));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.tab === name));
  loaders[name]().catch((e) => showError(e.message));
}

function tick() {
  refreshStats().then(() => showError("")).catch((e) => showError(e.message));
  const tab = (location.hash || "#overview").slice(1);
  if (tab === "clients" && !$("client-detail").matches(":hover")) loaders.clients().catch(() => {});
  if (tab === "topics") loadTopics().catch(() => {});
}

$("token").value = sessionStorage.getItem("midge-token") || "";
$("token").addEventListener("change", (e) => {
  if (e.target.value) sessionStorage.setItem("midge-token", e.target.value);
  else sessionStorage.removeItem("midge-token");
  refreshBroker().catch((err) => showError(err.message));
});
$("clients-form").addEventListener("submit", (e) => {
  e.preventDefault();
  loadClients(null).catch((err) => showError(err.message));
});
$("clients-next").addEventListener("click", () => loadClients(clientsCursor).catch((e) => showError(e.message)));
$("subs-form").addEventListener("submit", (e) => {
  e.preventDefault();
  loadSubscriptions().catch((err) => showError(err.message));
});
$("retained-form").addEventListener("submit", (e) => {
  e.preventDefault();
  loadRetained().catch((err) => showError(err.message));
});
$("events-form").addEventListener("submit", (e) => {
  e.preventDefault();
  followEvents();
});
$("events-stop").addEventListener("click", stopEvents);
window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));

showTab((location.hash || "#overview").slice(1));
refreshBroker().catch((e) => showError(e.message));
tick();
setInterval(tick, 1000);
setInterval(() => refreshBroker().catch(() => {}), 10000);
