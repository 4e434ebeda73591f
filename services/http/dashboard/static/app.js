// portsuite dashboard: polls api/services every second and redraws the table.
// Everything from the server goes into the page as text (textContent), never as HTML.
"use strict";

const POLL_MS = 1000;
const MAX_CLIENTS_SHOWN = 6;
const FLASH = new Set(["open", "total", "refused"]);
const MAX_TRANSCRIPTS = 4;
const MAX_TRANSCRIPT_LINES = 12;
const MAX_TRANSCRIPT_TEXT = 160;
const RANGES = {
  "well-known": "0–1023",
  registered: "1024–49151",
  dynamic: "49152–65535",
};
const previous = new Map(); // "service/field" -> last value, to flash changes

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function bytes(n) {
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}

function duration(s) {
  s = Math.max(0, Math.floor(s));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function numberCell(svc, field, value, shown, extra) {
  const td = el("td", "num " + field + (extra ? " " + extra : ""), shown);
  td.dataset.field = field;
  td.dataset.value = value;
  const key = svc.name + "/" + field;
  // flash the connection counts when they move (bytes move all the time: no flash)
  if (FLASH.has(field) && previous.has(key) && previous.get(key) !== value) td.classList.add("flash");
  previous.set(key, value);
  return td;
}

function whereCell(svc) {
  const td = el("td", "where");
  const listeners = svc.listeners && svc.listeners.length ? svc.listeners : [];
  if (!listeners.length) td.append(el("span", "nobody", "not listening"));
  for (const li of listeners) {
    const line = el("div");
    const kind = li.tls ? "tls" : li.transport;
    line.append(el("span", "proto " + kind, kind));
    let where;
    if (li.port === null || li.port === undefined) where = li.endpoint || li.host;
    else where = (String(li.host).includes(":") ? "[" + li.host + "]" : li.host) + ":" + li.port;
    line.append(document.createTextNode(where));
    td.append(line);
    if (li.transport === "udp" && svc.datagrams) {
      const d = svc.datagrams;
      td.append(el("div", "datagrams",
        d.in + " datagrams in · " + d.out + " out" + (d.dropped ? " · " + d.dropped + " dropped" : "")));
    }
  }
  return td;
}

function classCell(svc) {
  const td = el("td", "class");
  const seen = new Set();
  for (const li of svc.listeners || []) {
    if (!li.port_class || seen.has(li.port_class)) continue;
    seen.add(li.port_class);
    const wrap = el("div");
    wrap.append(el("span", "badge " + li.port_class, li.port_class));
    wrap.append(el("span", "range", "ports " + RANGES[li.port_class]));
    td.append(wrap);
  }
  if (!seen.size) td.append(el("span", "nobody", "—"));
  return td;
}

function clientsCell(svc, now) {
  const td = el("td", "clients-cell");
  const clients = (svc.clients || []).slice().sort((a, b) => a.since - b.since);
  if (!clients.length) {
    td.append(el("span", "nobody", "nobody"));
    return td;
  }
  const ul = el("ul", "clients");
  for (const c of clients.slice(0, MAX_CLIENTS_SHOWN)) {
    const li = el("li");
    li.title = "connected since " + new Date(c.since * 1000).toLocaleTimeString();
    li.append(el("span", "peer", c.peer));
    li.append(el("span", "detail",
      duration(c.seconds !== undefined ? c.seconds : now - c.since) + " · " +
      bytes(c.bytes_in) + " in · " + bytes(c.bytes_out) + " out"));
    ul.append(li);
  }
  if (clients.length > MAX_CLIENTS_SHOWN) {
    ul.append(el("li", "more", "… and " + (clients.length - MAX_CLIENTS_SHOWN) + " more"));
  }
  td.append(ul);
  return td;
}

function row(svc, now) {
  const tr = el("tr");
  tr.dataset.service = svc.name;
  const name = el("td");
  name.append(el("div", "name", svc.name));
  name.append(el("div", "type", svc.type));
  if (svc.description) name.title = svc.description;
  // live control: portsuite disable/enable, portsuite fault
  if (svc.state && svc.state !== "listening") name.append(el("div", "state", svc.state));
  const faults = Object.entries(svc.faults || {}).map(([k, v]) => k + "=" + v).join(" ");
  if (faults) name.append(el("div", "faults", "faults: " + faults));
  if (svc.state === "disabled") tr.classList.add("disabled");
  tr.append(name, whereCell(svc), classCell(svc));
  const c = svc.connections || { open: 0, total: 0, refused: 0 };
  tr.append(
    numberCell(svc, "open", c.open, c.open, c.open ? "" : "zero"),
    numberCell(svc, "total", c.total, c.total),
    numberCell(svc, "refused", c.refused, c.refused),
    numberCell(svc, "bytes_in", svc.bytes_in, bytes(svc.bytes_in)),
    numberCell(svc, "bytes_out", svc.bytes_out, bytes(svc.bytes_out)),
    clientsCell(svc, now),
  );
  return tr;
}

function transcripts(services) {
  const section = document.getElementById("transcripts");
  const list = document.getElementById("transcript-list");
  const items = [];
  for (const svc of services) for (const t of svc.transcripts || []) items.push(t);
  items.sort((a, b) => (a.started || 0) - (b.started || 0));
  section.hidden = items.length === 0;
  list.replaceChildren();
  for (const t of items.slice(-MAX_TRANSCRIPTS).reverse()) {
    const box = el("div", "transcript");
    box.append(el("h3", null, t.service + " ⇄ " + t.peer + (t.cut ? " (cut)" : "")));
    const pre = el("pre");
    for (const line of (t.lines || []).slice(-MAX_TRANSCRIPT_LINES)) {
      const arrow =
        line.dir === "c2s" ? "client → server" : line.dir === "note" ? "  (note)      " : "server → client";
      const t0 = typeof line.t === "number" ? line.t.toFixed(3).padStart(7) + " s  " : "";
      let text = String(line.text);
      if (text.length > MAX_TRANSCRIPT_TEXT) text = text.slice(0, MAX_TRANSCRIPT_TEXT) + " …";
      pre.append(el("span", line.dir, t0 + arrow + "  " + text + "\n"));
    }
    box.append(pre);
    list.append(box);
  }
}

function render(data) {
  const services = data.services || [];
  const now = data.now || Date.now() / 1000;
  const tbody = document.getElementById("rows");
  const rows = services.map((svc) => row(svc, now));
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "empty", "no services");
    td.colSpan = 9;
    tr.append(td);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
  let open = 0;
  let total = 0;
  for (const s of services) {
    open += (s.connections || {}).open || 0;
    total += (s.connections || {}).total || 0;
  }
  const summary = document.getElementById("summary");
  summary.replaceChildren(
    el("b", null, services.length), document.createTextNode(services.length === 1 ? " service · " : " services · "),
    el("b", null, open), document.createTextNode(open === 1 ? " client connected now · " : " clients connected now · "),
    el("b", null, total), document.createTextNode(" connections since start"),
  );
  summary.dataset.open = open;
  transcripts(services);
}

function setStatus(ok, text) {
  const s = document.getElementById("status");
  s.className = "status " + (ok ? "live" : "down");
  s.textContent = text;
}

async function poll() {
  try {
    const r = await fetch("api/services", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const data = await r.json();
    render(data);
    const up = data.started_at ? " · up " + duration(data.now - data.started_at) : "";
    setStatus(true, "live · " + new Date().toLocaleTimeString() + up);
  } catch (e) {
    setStatus(false, "cannot reach the suite (" + e.message + ") · retrying");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
