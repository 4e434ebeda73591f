// portsuite: each traced connection drawn as a sequence diagram (client and server
// lifelines, one arrow per chunk, time since the open). Shared by the dashboard and
// the lab guide. Everything from the server goes in as text (textContent), never HTML.
"use strict";

const MESSAGES = JSON.parse(document.getElementById("i18n").textContent);
const PAGE = JSON.parse(document.getElementById("page").textContent);
const SEQ_MAX_ARROWS = 14;
const SEQ_MAX_TEXT = 120;

function _(msgid) {
  return MESSAGES[msgid] || msgid;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function hostPort(host, port) {
  return (String(host).includes(":") ? "[" + host + "]" : host) + ":" + port;
}

// the server end of a transcript: the service's listener of the session's transport
function serverOf(svc, transport) {
  const listeners = svc.listeners || [];
  const li = listeners.find((l) => l.transport === (transport || "tcp")) || listeners[0];
  return li && li.port !== null && li.port !== undefined ? hostPort(li.host, li.port) : svc.name;
}

// how the bytes of a service read: "tls" (decrypted by the server), "ssh" (encrypted
// past the version lines), else plain
function secrecy(svc) {
  if (svc.type === "ssh") return "ssh";
  if (svc.tls) return "tls";
  return "";
}

function seconds(t) {
  return "+" + (typeof t === "number" ? t.toFixed(3) : "?") + " s";
}

function arrow(dir, label, t, kind) {
  const li = el("li", "msg " + dir + (kind ? " " + kind : ""));
  li.append(el("span", "t", seconds(t)));
  const lane = el("span", "lane");
  const text = el("span", "label", label);
  lane.append(text);
  lane.append(el("span", "line"));
  lane.setAttribute("aria-label",
    (dir === "c2s" ? _("client → server") : dir === "s2c" ? _("server → client") : "") + " " + label);
  li.append(lane);
  return li;
}

function drawSequence(svc, t) {
  const fig = el("figure", "seq");
  fig.dataset.service = svc.name;
  const transport = t.transport || "tcp";
  const server = serverOf(svc, transport);
  const cap = el("figcaption");
  cap.append(el("b", null, svc.name), document.createTextNode(" · " + svc.type + " · " + transport.toUpperCase()));
  const secret = secrecy(svc);
  if (secret === "tls") cap.append(el("span", "lock", _("TLS: encrypted on the wire; shown as the server decrypted it")));
  if (secret === "ssh") cap.append(el("span", "lock", _("SSH: encrypted after the version lines")));
  if (t.cut) cap.append(el("span", "cut", _("(cut: too long)")));
  fig.append(cap);
  const heads = el("div", "heads");
  const c = el("div", "life client");
  c.append(el("span", "role", _("client process")), el("span", "addr", t.peer));
  const s = el("div", "life server");
  s.append(el("span", "role", _("server process")), el("span", "addr", server));
  heads.append(el("span", "t", _("time")), c, s);
  fig.append(heads);
  const ol = el("ol", "body");
  if (transport === "tcp") {
    ol.append(arrow("c2s", _("connect (TCP: SYN, SYN-ACK, ACK)"), 0, "control"));
    if (secret === "tls") ol.append(arrow("both", _("TLS handshake (encrypted from here on)"), 0, "control"));
  }
  const lines = t.lines || [];
  const shown = lines.slice(-SEQ_MAX_ARROWS);
  if (lines.length > shown.length) {
    ol.append(el("li", "msg skipped", _("… earlier messages not shown:") + " " + (lines.length - shown.length)));
  }
  let plainLines = 0;
  for (const line of shown) {
    if (line.dir === "note") {
      // what the server says about the session (e.g. ftp's data connections): no arrow
      ol.append(arrow("note", String(line.text), line.t, "control"));
      continue;
    }
    let text = String(line.text);
    let kind = text.startsWith("hex: ") ? "hex" : "text";
    if (secret === "ssh" && kind === "hex" && plainLines >= 1) {
      text = "🔒 " + _("encrypted") + " (" + text.slice(5, 29) + "…)";
      kind = "encrypted";
    } else if (kind === "text") {
      plainLines++;
    }
    if (text.length > SEQ_MAX_TEXT) text = text.slice(0, SEQ_MAX_TEXT) + " …";
    ol.append(arrow(line.dir, text, line.t, kind));
  }
  if (typeof t.closed === "number") {
    ol.append(arrow("both", _("close (FIN)"), t.closed, "control"));
  } else if (transport === "tcp") {
    ol.append(el("li", "msg open", _("still open…")));
  }
  fig.append(ol);
  return fig;
}

// the last sessions of every traced service, newest first
function drawSequences(services, list, only, max, onePerService) {
  const items = [];
  for (const svc of services) {
    if (only && svc.name !== only) continue;
    for (const t of svc.transcripts || []) if (!t.dashboard) items.push([svc, t]);
  }
  items.sort((a, b) => (b[1].started || 0) - (a[1].started || 0));
  let chosen = items;
  if (onePerService) {
    // the newest conversation of each traced service, so that one busy service does not hide the rest
    const seen = new Set();
    chosen = items.filter(([svc]) => !seen.has(svc.name) && seen.add(svc.name));
  }
  const figs = chosen.slice(0, max).map(([svc, t]) => drawSequence(svc, t));
  if (figs.length) {
    // the focus (a diagram is focusable, to scroll it) stays on the same diagram
    const had = document.activeElement;
    const at = had && list.contains(had) ? [...list.querySelectorAll("[tabindex], a[href]")].indexOf(had) : -1;
    list.replaceChildren(...figs);
    if (at >= 0) list.querySelectorAll("[tabindex], a[href]")[at]?.focus({ preventScroll: true });
  }
  return figs.length;
}

// the lab guide's pages: poll and redraw the diagrams
async function pollSequences() {
  const list = document.getElementById("sequence-list");
  const status = document.getElementById("status");
  try {
    const r = await fetch("/_portsuite/api/services", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const data = await r.json();
    drawSequences(data.services || [], list, PAGE.service || null, PAGE.mode === "service" ? 3 : 6);
    if (status) status.textContent = _("live") + " · " + new Date().toLocaleTimeString(PAGE.lang);
  } catch (e) {
    if (status) status.textContent = _("cannot reach the suite") + " (" + e.message + ")";
  } finally {
    setTimeout(pollSequences, 2000);
  }
}

if (PAGE.mode === "sequences" || PAGE.mode === "service") pollSequences();
