// The live board: open alerts by level, then by victim, kept current by the server-sent events of
// /api/watch (WatchAlerts), and acknowledged in one click.
"use strict";

const LEVELS = ["SUPERINTENDENT", "INSPECTOR", "SUPERVISOR"];
const LEVEL_NAMES = { SUPERINTENDENT: "Superintendent", INSPECTOR: "Inspector", SUPERVISOR: "Supervisor" };
const OPEN = new Set(["FIRING", "ESCALATED", "ACKNOWLEDGED"]);
const alerts = new Map();  // alert_id -> its latest transition
const groups = new Map();  // "LEVEL|victim" -> Map(alert_id -> alert): what each victim box on the board shows
const dirty = new Set();   // boxes to draw again
const filters = new URLSearchParams(location.search);
let source = null;
let flushQueued = false;
let loaded = false;

const keyOf = (a) => `${a.level}|${a.victim_id}`;
// Unacknowledged first, then the one that climbs soonest; a victim's box by its most urgent alert.
const urgency = (a) => (a.state === "ACKNOWLEDGED" ? 1e15 : 0) + Date.parse(a.acknowledge_by || a.at || 0);
const boxUrgency = (key) => Math.min(...[...groups.get(key).values()].map(urgency));

function query() {
  const q = new URLSearchParams(filters);
  q.set("purpose", Vigil.purpose());
  return q.toString();
}

// A transition replaces what is shown of its alert unless an older one arrives late. Only the victim boxes it
// leaves and enters are drawn again (a board holds thousands).
function take(alert) {
  const have = alerts.get(alert.alert_id);
  if (have && (have.revision || 0) > (alert.revision || 0)) return;
  if (have) {
    groups.get(keyOf(have))?.delete(have.alert_id);
    dirty.add(keyOf(have));
  }
  if (OPEN.has(alert.state) && LEVELS.includes(alert.level)) {
    alerts.set(alert.alert_id, alert);
    if (!groups.has(keyOf(alert))) groups.set(keyOf(alert), new Map());
    groups.get(keyOf(alert)).set(alert.alert_id, alert);
    dirty.add(keyOf(alert));
  } else {
    alerts.delete(alert.alert_id);
  }
  if (loaded && !flushQueued) {
    flushQueued = true;
    setTimeout(flush, 100);
  }
}

function facts(a, now) {
  const e = Vigil.escape;
  const out = [`<span>raised <span data-since="${e(a.fired_at || a.at)}">${Vigil.span(now - Date.parse(a.fired_at || a.at))}</span> ago</span>`];
  if (a.state !== "ACKNOWLEDGED" && a.acknowledge_by) {
    out.push(`<span>climbs a level at ${e(Vigil.time(a.acknowledge_by))} ` +
             `(<span data-due="${e(a.acknowledge_by)}">${due(a.acknowledge_by, now)}</span>)</span>`);
  }
  out.push(`<span>${a.evidence_total || (a.evidence_event_ids || []).length} evidence events</span>`);
  if (a.threshold) out.push(`<span>threshold: ${e(a.threshold)}</span>`);
  if (a.force) out.push(`<span>${e(a.force)}</span>`);
  return out.join("");
}

function due(iso, now) {
  const t = Date.parse(iso);
  return t > now ? `in ${Vigil.span(t - now)}` : "overdue";
}

function card(a, now) {
  const e = Vigil.escape;
  // No <form> per card: thousands of forms make the browser slow to draw and to drop them.
  const action = a.state === "ACKNOWLEDGED"
    ? `<span>acknowledged by ${e(a.acknowledged_by)}</span>`
    : `<div class="ack" data-alert="${e(a.alert_id)}">
         <input class="note" aria-label="Note for the ${e(a.rule)} alert on ${e(a.victim_id)}"
                placeholder="note (optional)" maxlength="1024" autocomplete="off">
         <button type="button" class="ack-button">Acknowledge</button></div>`;
  return `<article class="alert ${e(a.state)}" id="alert-${e(a.alert_id)}" data-alert-id="${e(a.alert_id)}">
    <div><span class="rule">${e(a.rule)}</span> <span class="badge ${e(a.state)}">${e(a.state)}</span>
      <div class="reason">${e(a.reason)}</div>
      <div class="facts">${facts(a, now)}</div></div>
    <div>${action}</div></article>`;
}

// A victim's box at one level: its alerts, most urgent first; "" when it has none.
function box(key, now) {
  const list = [...(groups.get(key)?.values() || [])].sort((x, y) => urgency(x) - urgency(y));
  if (!list.length) return "";
  const victim = list[0].victim_id;
  return `<div class="victim" data-key="${Vigil.escape(key)}" data-urgency="${boxUrgency(key)}">` +
    `<h3><a href="/victims/${encodeURIComponent(victim)}">${Vigil.escape(victim)}</a>` +
    ` — ${list.length} alert${list.length > 1 ? "s" : ""}</h3>${list.map((a) => card(a, now)).join("")}</div>`;
}

function counts() {
  const n = Object.fromEntries(LEVELS.map((l) => [l, 0]));
  for (const a of alerts.values()) n[a.level] += 1;
  for (const level of LEVELS) {
    $(`h-${level}`).textContent = `${LEVEL_NAMES[level]} — ${n[level]} open`;
    $(`empty-${level}`).hidden = n[level] > 0;
  }
  $("summary").textContent = `${alerts.size} open alerts. Updated ${Vigil.time(new Date().toISOString())}.`;
  const forces = new Set([...alerts.values()].map((a) => a.force));
  $("forces").innerHTML = [...forces].sort().map((f) => `<option value="${Vigil.escape(f)}">`).join("");
}

// The whole board, once, when what is open has been read.
function renderAll() {
  const now = Date.now();
  const html = LEVELS.map((level) => {
    const keys = [...groups.keys()].filter((k) => k.startsWith(level + "|") && groups.get(k).size);
    keys.sort((x, y) => boxUrgency(x) - boxUrgency(y) || (x < y ? -1 : 1));
    return `<section class="level ${level}" aria-labelledby="h-${level}"><h2 id="h-${level}"></h2>` +
      `<p class="empty" id="empty-${level}">None.</p><div class="boxes" id="boxes-${level}">` +
      keys.map((k) => box(k, now)).join("") + `</div></section>`;
  });
  $("board").innerHTML = html.join("");
  dirty.clear();
  counts();
}

// The boxes that changed, drawn again in place (or moved to where their urgency puts them).
function flush() {
  flushQueued = false;
  const now = Date.now();
  for (const key of dirty) {
    const old = document.querySelector(`.victim[data-key="${CSS.escape(key)}"]`);
    const notes = new Map();
    old?.querySelectorAll(".ack").forEach((d) => {
      const note = d.querySelector("input").value;
      if (note) notes.set(d.dataset.alert, note);
    });
    const focused = old?.contains(document.activeElement) ? document.activeElement.closest(".ack")?.dataset.alert : null;
    const html = box(key, now);
    old?.remove();
    if (!html) continue;
    const holder = document.createElement("div");
    holder.innerHTML = html;
    const el = holder.firstElementChild;
    const boxes = $(`boxes-${key.split("|")[0]}`);
    const u = Number(el.dataset.urgency);
    const next = [...boxes.children].find((b) => Number(b.dataset.urgency) > u);
    boxes.insertBefore(el, next || null);
    for (const [id, note] of notes) {
      const input = el.querySelector(`.ack[data-alert="${CSS.escape(id)}"] input`);
      if (input) input.value = note;
    }
    if (focused) el.querySelector(`.ack[data-alert="${CSS.escape(focused)}"] input`)?.focus();
  }
  dirty.clear();
  counts();
}

// Ages and countdowns, in place.
function tick() {
  const now = Date.now();
  document.querySelectorAll("[data-since]").forEach((s) => { s.textContent = Vigil.span(now - Date.parse(s.dataset.since)); });
  document.querySelectorAll("[data-due]").forEach((s) => { s.textContent = due(s.dataset.due, now); });
}

async function acknowledge(form) {
  const button = form.querySelector("button");
  const note = form.querySelector("input");
  button.disabled = true;
  button.textContent = "Acknowledging…";
  try {
    const alert = await Vigil.call(`/api/alerts/${encodeURIComponent(form.dataset.alert)}/acknowledge`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ note: note.value }),
    });
    take(alert);
    $("error").textContent = "";
  } catch (err) {
    $("error").textContent = `Not acknowledged: ${err.message}`;
    button.disabled = false;
    button.textContent = "Acknowledge";
  }
}

async function loadOpen() {
  try {
    const body = await Vigil.call(`/api/alerts?${query()}`);
    for (const a of body.alerts) take(a);
    loaded = true;
    if (body.truncated) $("error").textContent = "More open alerts than one board shows: use the filters.";
    renderAll();
    // When the board was first drawn whole (the frame after it, laid out and painted), in ms since the page was
    // asked for: the console benchmark reads it.
    requestAnimationFrame(() => setTimeout(() => {
      document.body.dataset.loadedMs = Math.round(performance.now());
    }, 0));
  } catch (err) {
    $("error").textContent = `Cannot read the alerts: ${err.message}`;
  }
}

function connect() {
  source = new EventSource(`/api/watch?${query()}`);
  source.addEventListener("ready", () => {
    $("status").textContent = "live";
    $("status").className = "status live";
    // The watch is placed: what is already open is read now, and what changes from here arrives on it.
    if (!loaded) loadOpen();
  });
  source.addEventListener("alert", (ev) => take(JSON.parse(ev.data)));
  source.addEventListener("end", (ev) => {
    const end = JSON.parse(ev.data);
    if (end.code === "UNAVAILABLE" || end.code === "RESOURCE_EXHAUSTED") return;  // it reconnects and resumes
    source.close();
    $("status").textContent = "stopped";
    $("status").className = "status down";
    $("error").textContent = `The live feed stopped: ${end.message}`;
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) return;
    $("status").textContent = "reconnecting…";
    $("status").className = "status down";
  };
}

function start() {
  if (source) return location.reload();  // a new purpose: read again under it
  connect();
}

function init() {
  for (const box of document.querySelectorAll("input[name=level]")) {
    box.checked = filters.getAll("level").includes(box.value);
  }
  $("force").value = filters.get("force") || "";
  // One click on Acknowledge, or Enter in the note.
  $("board").addEventListener("click", (ev) => {
    if (ev.target.matches(".ack-button")) acknowledge(ev.target.closest(".ack"));
  });
  $("board").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && ev.target.matches(".ack input")) acknowledge(ev.target.closest(".ack"));
  });
  setInterval(tick, 30000);
  Vigil.showIdentity($("who")).then((session) => {
    $("rule").innerHTML += (session?.rules || []).map((r) => `<option>${Vigil.escape(r)}</option>`).join("");
    $("rule").value = filters.get("rule") || "";
  });
  Vigil.askPurpose($("purpose-form"), start);
}

init();
