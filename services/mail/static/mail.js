// portsuite mail view: mailboxes, messages, one message (text, sandboxed HTML,
// headers, source). Live: polls /_portsuite/api/mail/ and reloads what changed.
// Every value from a message goes through textContent, never innerHTML.
"use strict";
(function () {
  const API = "/_portsuite/api/mail/";
  const $ = (id) => document.getElementById(id);
  let current = null;   // mailbox name
  let opened = null;    // message id
  let version = -1;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function size(n) {
    return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KB" : (n / 1048576).toFixed(1) + " MB";
  }
  function when(m) {
    const d = m.date ? new Date(m.date) : new Date(m.received * 1000);
    return isNaN(d) ? "" : d.toLocaleString();
  }
  async function get(path) {
    const r = await fetch(API + path, { cache: "no-store" });
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    return r.json();
  }

  async function refresh() {
    let data;
    try {
      data = await get("");
    } catch (e) {
      $("status").textContent = "cannot reach the suite (" + e.message + ")";
      return;
    }
    $("status").textContent = "live · updated " + new Date().toLocaleTimeString();
    if (data.version === version) return;
    version = data.version;
    $("storage").textContent = "stored in: " + data.storage;
    const list = $("box-list");
    list.replaceChildren();
    for (const box of data.mailboxes) {
      const li = el("li");
      const b = el("button", box.name + " (" + box.messages + (box.unseen ? ", " + box.unseen + " new" : "") + ")");
      b.type = "button";
      if (box.name === current) b.classList.add("current");
      b.addEventListener("click", () => { current = box.name; opened = null; version = -1; refresh(); });
      li.append(b);
      list.append(li);
    }
    if (current === null && data.mailboxes.length) current = data.mailboxes[0].name;
    if (current !== null) await showBox(current);
  }

  async function showBox(name) {
    const data = await get(encodeURIComponent(name));
    $("list-title").textContent = name + " — " + data.total + " message" + (data.total === 1 ? "" : "s");
    $("empty").hidden = data.total === 0;
    $("none").hidden = data.total !== 0;
    const body = $("messages");
    body.replaceChildren();
    for (const m of data.messages) {
      const tr = el("tr");
      if (!m.flags.includes("\\Seen")) tr.classList.add("unseen");
      if (m.id === opened) tr.classList.add("current");
      tr.append(el("td", m.from.join(", ")), el("td", m.to.join(", ")),
        el("td", m.subject || "(no subject)"), el("td", when(m)), el("td", size(m.size)));
      tr.tabIndex = 0;
      tr.addEventListener("click", () => openMessage(name, m.id));
      tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openMessage(name, m.id); });
      body.append(tr);
    }
  }

  function show(view) {
    for (const v of ["text", "html", "headers", "raw"]) {
      $("view-" + v).hidden = v !== view;
      const b = document.querySelector('[data-view="' + v + '"]');
      b.setAttribute("aria-pressed", String(v === view));
    }
  }

  async function openMessage(box, id) {
    opened = id;
    const path = encodeURIComponent(box) + "/" + encodeURIComponent(id);
    const m = await get(path);
    $("message").hidden = false;
    $("msg-subject").textContent = m.subject || "(no subject)";
    const meta = $("msg-meta");
    meta.replaceChildren();
    for (const [k, v] of [["From", m.from.join(", ")], ["To", m.to.join(", ")], ["Date", when(m)], ["Size", size(m.size)]]) {
      meta.append(el("dt", k), el("dd", v));
    }
    $("view-text").textContent = m.text === null ? "(no text part)" : m.text;
    const frame = $("view-html");
    frame.removeAttribute("src");
    document.querySelector('[data-view="html"]').disabled = !m.html;
    if (m.html) frame.src = API + path + "/html";
    const hb = document.querySelector("#view-headers tbody");
    hb.replaceChildren();
    for (const [k, v] of m.headers) {
      const tr = el("tr");
      tr.append(el("th", k), el("td", v));
      hb.append(tr);
    }
    const raw = await fetch(API + path + "/raw", { cache: "no-store" });
    $("view-raw").textContent = await raw.text();
    const att = $("attachments");
    att.replaceChildren();
    for (const a of m.attachments) att.append(el("li", (a.filename || "(unnamed)") + " · " + a.content_type + " · " + size(a.size)));
    show(m.html && m.text === null ? "html" : "text");
    version = -1;  // reading marks nothing, but the list shows which one is open
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const b of document.querySelectorAll("[data-view]")) b.addEventListener("click", () => show(b.dataset.view));
    $("empty").addEventListener("click", async () => {
      if (current === null || !confirm("Delete every message of " + current + "?")) return;
      await fetch(API + encodeURIComponent(current), { method: "DELETE" });
      opened = null;
      $("message").hidden = true;
      version = -1;
      refresh();
    });
    refresh();
    setInterval(refresh, 2000);
  });
})();
