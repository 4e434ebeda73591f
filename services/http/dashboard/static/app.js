// portsuite dashboard: polls api/services every second and redraws one card per
// service. Needs seq.js (el, _, drawSequences). Server data goes in as text only.
"use strict";

const POLL_MS = 1000;
const MAX_CLIENTS_SHOWN = 3;
const MAX_SEQUENCES = 3;
const FLASH = new Set(["open", "total", "refused", "errors", "tls_failed"]);
const previous = new Map(); // "service/field" -> last value, to flash changes
const CLASS_NAMES = { "well-known": _("well-known"), registered: _("registered"), dynamic: _("dynamic") };

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

function counter(svc, field, value, label, shown, bad) {
  const span = el("span", "count " + field + (bad && value ? " bad" : ""));
  span.dataset.field = field;
  span.dataset.value = value;
  span.append(el("b", null, shown === undefined ? value : shown), document.createTextNode(" " + label));
  const key = svc.name + "/" + field;
  if (FLASH.has(field) && previous.has(key) && previous.get(key) !== value) span.classList.add("flash");
  previous.set(key, value);
  return span;
}

function listenerLines(svc) {
  const box = el("div", "where");
  const listeners = svc.listeners || [];
  if (!listeners.length) box.append(el("span", "nobody", _("not listening")));
  for (const li of listeners) {
    const line = el("div", "listener");
    const kind = li.tls ? "tls" : li.transport;
    line.append(el("span", "proto " + kind, kind));
    let where;
    if (li.port === null || li.port === undefined) where = li.endpoint || li.host;
    else where = hostPort(li.host, li.port);
    line.append(el("span", "addr", where));
    if (li.port_class) line.append(el("span", "badge " + li.port_class, CLASS_NAMES[li.port_class]));
    if (li.transport === "udp" && svc.datagrams && (svc.datagrams.in || svc.datagrams.out)) {
      const d = svc.datagrams;
      line.append(el("span", "datagrams",
        d.in + " " + _("datagrams in") + " · " + d.out + " " + _("out") +
        (d.dropped ? " · " + d.dropped + " " + _("dropped") : "")));
    }
    box.append(line);
  }
  return box;
}

// the connections of dashboard pages (this one, polling, and the others): not the class's
function mineOf(c) {
  return Boolean(c.this_page || c.dashboard);
}

function clientList(svc, now) {
  const clients = (svc.clients || []).slice().sort((a, b) => a.since - b.since);
  const ul = el("ul", "clients");
  const others = clients.filter((c) => !mineOf(c));
  for (const c of others.slice(0, MAX_CLIENTS_SHOWN)) {
    const li = el("li");
    li.append(el("span", "peer", c.peer));
    li.append(el("span", "detail",
      duration(c.seconds !== undefined ? c.seconds : now - c.since) + " · " +
      bytes(c.bytes_in) + " " + _("in") + " · " + bytes(c.bytes_out) + " " + _("out")));
    ul.append(li);
  }
  if (others.length > MAX_CLIENTS_SHOWN) {
    ul.append(el("li", "more", _("… and more:") + " " + (others.length - MAX_CLIENTS_SHOWN)));
  }
  // the dashboard's own connections, on one line: this page (polling) and the others
  const page = clients.find((c) => c.this_page);
  const dash = clients.filter((c) => c.dashboard).length;
  if (page || dash) {
    const li = el("li", "this-page");
    if (page) li.append(el("span", "peer", page.peer));
    li.append(el("span", "detail",
      (page ? _("this page") : "") + (page && dash ? " + " : "") +
      (dash ? dash + " " + _("other dashboard connections") : "") + " · " + _("not counted")));
    ul.append(li);
  }
  if (!others.length && !page && !dash) ul.append(el("li", "nobody", _("no client connected")));
  return ul;
}

// what a service shows of its own connections (ServiceStats.set_detail), e.g. each FTP
// session: its control connection, then its data connections (passive/active, both
// ends, which way the bytes go, how many)
const MAX_SESSIONS_SHOWN = 3;
const MAX_LINKS_SHOWN = 3;

function ends(c) {
  const arrow = c.direction === "down" ? " ← " : c.direction === "up" ? " → " : " ⇄ ";
  return (c.client || "?") + arrow + (c.server || "?");
}

function connLine(tag, c, withBytes) {
  const line = el(tag, "conn " + (c.kind || ""));
  line.dataset.kind = c.kind || "";
  line.dataset.state = c.state || "";
  line.append(el("span", "kind", _(c.kind || "")), el("span", "ends " + (c.direction || ""), ends(c)));
  const bits = [];
  if (c.text) bits.push(c.text);
  if (withBytes && typeof c.bytes === "number" && c.state !== "waiting") bits.push(bytes(c.bytes));
  if (c.state && c.state !== "open") bits.push(_(c.state));
  if (bits.length) line.append(el("span", "text", bits.join(" · ")));
  return line;
}

function sessionList(svc) {
  const rows = svc.detail || [];
  if (!rows.length) return null;
  const ul = el("ul", "sessions");
  for (const row of rows.slice(0, MAX_SESSIONS_SHOWN)) {
    const li = el("li", "session");
    li.append(connLine("div", row, false));
    const links = (row.links || []).slice(-MAX_LINKS_SHOWN);
    if (links.length) {
      const sub = el("ul", "links");
      for (const c of links) sub.append(connLine("li", c, true));
      li.append(sub);
    }
    ul.append(li);
  }
  if (rows.length > MAX_SESSIONS_SHOWN) {
    ul.append(el("li", "more", _("… and more:") + " " + (rows.length - MAX_SESSIONS_SHOWN)));
  }
  return ul;
}

function card(svc, now) {
  const art = el("article", "card");
  art.dataset.service = svc.name;
  if (svc.state === "disabled") art.classList.add("disabled");
  const c = svc.connections || { open: 0, total: 0, refused: 0 };
  const mine = (svc.clients || []).filter(mineOf).length;
  const open = Math.max(0, c.open - mine);
  const head = el("div", "card-head");
  const title = el("h2", "name");
  const link = el("a", null, svc.name);
  link.href = "learn/service/" + encodeURIComponent(svc.name);
  title.append(link);
  head.append(title, el("span", "type", svc.type));
  // live control: portsuite disable/enable, portsuite fault
  const STATES = { disabled: _("disabled"), stopped: _("stopped") };
  if (svc.state && svc.state !== "listening") head.append(el("span", "state", STATES[svc.state] || svc.state));
  const faults = Object.entries(svc.faults || {}).map(([k, v]) => k + "=" + v).join(" ");
  if (faults) head.append(el("span", "faults", _("faults:") + " " + faults));
  const big = counter(svc, "open", open, open === 1 ? _("client now") : _("clients now"));
  big.classList.add("open-now");
  if (!open) big.classList.add("zero");
  head.append(big);
  art.append(head, listenerLines(svc));
  const counts = el("div", "counts");
  counts.append(
    counter(svc, "total", c.total - mine, c.total - mine === 1 ? _("connection") : _("connections")),
    counter(svc, "refused", c.refused, _("refused"), undefined, true),
    counter(svc, "errors", svc.errors || 0, _("errors"), undefined, true),
  );
  if (svc.tls) counts.append(counter(svc, "tls_failed", svc.tls_failed || 0, _("TLS failed"), undefined, true));
  counts.append(
    counter(svc, "bytes_in", svc.bytes_in, _("in"), bytes(svc.bytes_in)),
    counter(svc, "bytes_out", svc.bytes_out, _("out"), bytes(svc.bytes_out)),
  );
  art.append(counts, clientList(svc, now));
  const sessions = sessionList(svc);
  if (sessions) art.append(sessions);
  if (svc.description) art.title = svc.description;
  return art;
}

// A redraw replaces the cards: the keyboard focus goes to the same link in the new ones,
// so that a keyboard user does not lose their place at every poll.
function keepFocus(box, redraw) {
  const had = document.activeElement;
  const key = had && box.contains(had) && had !== box
    ? [had.closest("[data-service]")?.dataset.service, had.getAttribute("href"), had.tagName] : null;
  redraw();
  if (!key) return;
  for (const cand of box.querySelectorAll(key[2])) {
    if (cand.closest("[data-service]")?.dataset.service === key[0] && cand.getAttribute("href") === key[1]) {
      cand.focus({ preventScroll: true });
      return;
    }
  }
}

function render(data) {
  const services = data.services || [];
  const now = data.now || Date.now() / 1000;
  const cards = document.getElementById("cards");
  const items = services.map((svc) => card(svc, now));
  if (!items.length) items.push(el("p", "empty", _("no services")));
  keepFocus(cards, () => cards.replaceChildren(...items));
  let open = 0;
  let total = 0;
  for (const s of services) {
    const mine = (s.clients || []).filter(mineOf).length;
    open += ((s.connections || {}).open || 0) - mine;
    total += (s.connections || {}).total || 0;
  }
  const summary = document.getElementById("summary");
  summary.replaceChildren(
    el("b", null, services.length), document.createTextNode(" " + _("services") + " · "),
    el("b", null, open), document.createTextNode(" " + _("clients connected now") + " · "),
    el("b", null, total), document.createTextNode(" " + _("connections since start")),
  );
  summary.dataset.open = open;
  // does every card fit on the screen, without scrolling? (for the projector; tests read it)
  const last = cards.lastElementChild;
  if (last) cards.dataset.fits = String(last.getBoundingClientRect().bottom <= window.innerHeight);
  const section = document.getElementById("sequences");
  const n = drawSequences(services, document.getElementById("sequence-list"), null, MAX_SEQUENCES, true);
  section.hidden = n === 0;
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
    const up = data.started_at ? " · " + _("up") + " " + duration(data.now - data.started_at) : "";
    setStatus(true, _("live") + " · " + new Date().toLocaleTimeString(PAGE.lang) + up);
  } catch (e) {
    setStatus(false, _("cannot reach the suite") + " (" + e.message + ") · " + _("retrying"));
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
