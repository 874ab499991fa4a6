// A victim's page: the risk profile, the timeline as a picture (d3: a time axis, a lane for each kind of
// event, and a bar for each alert showing its climb through the levels), each alert's explanation with its
// evidence, and every event as a table.
"use strict";

const victimId = decodeURIComponent(location.pathname.split("/").pop());
const COMMON = new Set(["event_id", "victim_id", "occurred_at", "incident_id", "force", "source", "actor"]);
// Lanes of the picture, top to bottom, and which event kinds go in each.
const LANES = [
  ["Calls", /^call_/],
  ["Incidents", /^(incident_|crime_recorded|supervisor_notified)/],
  ["Units", /^unit_/],
  ["Assessments", /^risk_assessed/],
  ["Arrests", /^arrest_/],
  ["Markers", /^marker_/],
  ["Protections, bail, court", /^(protection_|bail_|court_)/],
  ["Safeguarding, disclosure, MARAC", /^(safeguarding_|disclosure_|marac_)/],
  ["Acknowledgements", /^escalation_acknowledged/],
  ["Other", /./],
];
const COLOURS = ["#0b4f8a", "#5b2a86", "#2f6f4f", "#8a4b00", "#8b0000", "#a0005a", "#14213d", "#1d5e20", "#3d3d3d",
                 "#555"];

function kind(event) {
  return Object.keys(event).find((k) => !COMMON.has(k)) || "event";
}
function words(k) { return k.replace(/_/g, " "); }
function lane(k) { return LANES.findIndex(([, re]) => re.test(k)); }

function showProfile(p) {
  const e = Vigil.escape;
  const items = [
    ["Risk level", (p.risk_level || "RISK_LEVEL_UNSPECIFIED").replace("RISK_", "")],
    ["Why", (p.risk_reasons || []).join(" ") || "—"],
    ["Calls (last 24 h / all)", `${p.calls_last_24h || 0} / ${p.calls_total || 0}`],
    ["Incidents", p.incidents_total || 0],
    ["Latest assessment", p.latest_assessment
      ? `${(p.latest_assessment.effective_level || "").toString()} at ${Vigil.time(p.latest_assessment.at)}` : "none"],
    ["Warning markers", (p.markers || []).map((m) => `${m.marker} (${m.suspect_id})`).join(", ") || "none"],
    ["Awaited", (p.open_deadlines || []).map((d) => `${d.awaiting} by ${Vigil.time(d.due)}`).join("; ") || "nothing"],
    ["Protections in force", (p.protections_in_force || []).map((x) => x.bail ? "bail" : x.kind).join(", ") || "none"],
    ["MARAC referred", p.marac_referred ? "yes" : "no"],
    ["As of", Vigil.time(p.as_of)],
  ];
  $("profile").innerHTML = items.map(([k, v]) => `<div><dl><dt>${e(k)}</dt><dd>${e(v)}</dd></dl></div>`).join("");
}

function chart(events, explanations) {
  const rowH = 26, left = 210, right = 30, top = 30;
  const alertRows = explanations.map((x) => x.alert);
  const rows = LANES.length + alertRows.length;
  const width = Math.max(900, $("chart").clientWidth - 2);
  const height = top + rows * rowH + 10;
  const times = events.map((e) => Date.parse(e.occurred_at));
  for (const x of explanations) for (const t of x.transitions || [x.alert]) times.push(Date.parse(t.at));
  const now = Date.now();
  const lo = d3.min(times) ?? now - 3600e3, hi = Math.max(d3.max(times) ?? now, lo + 60e3);
  const x = d3.scaleTime().domain([lo - (hi - lo) * 0.03, hi + (hi - lo) * 0.03]).range([left, width - right]);
  const svg = d3.select("#chart").html("").append("svg").attr("width", width).attr("height", height)
    .attr("role", "img").attr("aria-label", `Timeline of ${events.length} events and ${alertRows.length} alerts`);
  // 24-hour times, and the date at each midnight.
  const format = (d) => (d3.timeDay(d) < d ? d3.timeFormat("%H:%M") : d3.timeFormat("%d %b"))(d);
  svg.append("g").attr("transform", `translate(0,${top - 6})`)
    .call(d3.axisTop(x).ticks(Math.floor(width / 110)).tickFormat(format));
  const label = (i, text) => svg.append("text").attr("class", "lane-label").attr("x", 6)
    .attr("y", top + i * rowH + rowH / 2 + 4).text(text);
  LANES.forEach(([name], i) => {
    svg.append("line").attr("class", "lane").attr("x1", left).attr("x2", width - right)
      .attr("y1", top + i * rowH + rowH / 2).attr("y2", top + i * rowH + rowH / 2);
    label(i, name);
  });
  // Events: a mark each, keyboard-focusable, with its kind and time as its title.
  svg.append("g").selectAll("circle").data(events).join("circle")
    .attr("class", "mark").attr("r", 6).attr("tabindex", 0)
    .attr("cx", (e) => x(Date.parse(e.occurred_at)))
    .attr("cy", (e) => top + lane(kind(e)) * rowH + rowH / 2)
    .attr("fill", (e) => COLOURS[lane(kind(e))])
    .attr("aria-label", (e) => `${words(kind(e))} at ${Vigil.time(e.occurred_at)}`)
    .append("title").text((e) => `${words(kind(e))} — ${Vigil.time(e.occurred_at)} (${e.event_id})`);
  // Alerts: a bar from when each fired, a segment per transition coloured by level (green once acknowledged),
  // up to its resolution or now.
  alertRows.forEach((a, i) => {
    const row = LANES.length + i;
    label(row, `${a.rule}`).append("title").text(a.reason);
    const transitions = explanations[i].transitions?.length ? explanations[i].transitions : [a];
    const g = svg.append("g").attr("class", "alert-bar").attr("data-alert-id", a.alert_id);
    transitions.forEach((t, j) => {
      const start = Date.parse(t.at);
      const end = j + 1 < transitions.length ? Date.parse(transitions[j + 1].at)
        : t.state === "RESOLVED" ? start : Math.max(start, Math.min(now, x.domain()[1].getTime()));
      const cls = t.state === "ACKNOWLEDGED" ? "ACKNOWLEDGED" : t.level;
      g.append("rect").attr("class", `segment ${cls}`).attr("x", x(start)).attr("y", top + row * rowH + 5)
        .attr("width", Math.max(3, x(end) - x(start))).attr("height", rowH - 10).attr("tabindex", 0)
        .attr("aria-label", `${a.rule}: ${t.state} at ${t.level} from ${Vigil.time(t.at)}`)
        .append("title").text(`${t.state} — ${t.level} — ${Vigil.time(t.at)}`);
    });
  });
  // Swatches as SVG (fill is an attribute, which the page's Content-Security-Policy allows; inline styles not).
  const swatch = (colour, text) => `<span><svg width="12" height="12" aria-hidden="true"><rect width="12" ` +
    `height="12" fill="${colour}"/></svg> ${Vigil.escape(text)}</span>`;
  $("legend").innerHTML = LANES.map(([name], i) => swatch(COLOURS[i], name)).join("") +
    swatch("#0b4f8a", "alert at supervisor") + swatch("#8a4b00", "at inspector") +
    swatch("#8b0000", "at superintendent") + swatch("#1d5e20", "acknowledged");
}

function showAlerts(explanations) {
  const e = Vigil.escape;
  if (!explanations.length) {
    $("alerts").innerHTML = `<p class="empty">No alerts.</p>`;
    return;
  }
  $("alerts").innerHTML = explanations.map((x) => {
    const a = x.alert;
    const climb = (x.transitions || []).map((t) =>
      `<tr><td>${e(Vigil.time(t.at))}</td><td>${e(t.state)}</td><td>${e(t.level)}</td>` +
      `<td>${e(t.acknowledged_by || "")}</td></tr>`).join("");
    const evidence = (x.evidence || []).map((ev) =>
      `<tr><td>${e(Vigil.time(ev.occurred_at))}</td><td>${e(words(kind(ev)))}</td><td>${e(ev.event_id)}</td></tr>`)
      .join("");
    const more = (a.evidence_total || 0) > (x.evidence || []).length
      ? `<p>${a.evidence_total} evidence events in all; the first 10 and the last 10 are listed.</p>` : "";
    return `<details class="explanation" id="explain-${e(a.alert_id)}" ${a.state === "RESOLVED" ? "" : "open"}>
      <summary><strong>${e(a.rule)}</strong> <span class="badge ${e(a.state)}">${e(a.state)}</span>
        ${e(a.level)} — ${e(a.reason)}</summary>
      <p>Threshold: ${e(x.rule_settings?.threshold || a.threshold)}. Raised ${e(Vigil.time(a.fired_at))}.
        ${a.deadline ? "Deadline missed: " + e(Vigil.time(a.deadline)) + "." : ""}</p>
      <h3>How it climbed</h3>
      <table><thead><tr><th>When</th><th>State</th><th>Level</th><th>Acknowledged by</th></tr></thead>
        <tbody>${climb}</tbody></table>
      <h3>Evidence</h3>${more}
      <table><thead><tr><th>When</th><th>What</th><th>Event</th></tr></thead><tbody>${evidence}</tbody></table>
    </details>`;
  }).join("");
}

function showEvents(events, truncated) {
  const e = Vigil.escape;
  const rows = events.map((ev) => {
    const k = kind(ev);
    const detail = ev[k] && typeof ev[k] === "object" ? JSON.stringify(ev[k]) : "";
    return `<tr><td>${e(Vigil.time(ev.occurred_at))}</td><td>${e(words(k))}</td><td>${e(ev.incident_id || "")}</td>` +
           `<td>${e(detail)}</td><td>${e(ev.event_id)}</td></tr>`;
  }).join("");
  $("events").innerHTML = (truncated ? `<p>Only the first ${events.length} events are shown.</p>` : "") +
    `<table><thead><tr><th>When</th><th>What</th><th>Incident</th><th>Detail</th><th>Event</th></tr></thead>` +
    `<tbody>${rows}</tbody></table>`;
}

async function load() {
  $("error").textContent = "";
  try {
    const q = new URLSearchParams({ purpose: Vigil.purpose() });
    const body = await Vigil.call(`/api/victims/${encodeURIComponent(victimId)}?${q}`);
    const events = body.events.filter((ev) => kind(ev) !== "clock_tick");
    showProfile(body.profile);
    chart(events, body.alerts);
    showAlerts(body.alerts);
    if (body.alerts_truncated) {
      $("alerts").insertAdjacentHTML("afterbegin", `<p>Only the newest ${body.alerts.length} alerts are shown.</p>`);
    }
    showEvents(events, body.events_truncated);
    document.body.dataset.loaded = "true";
  } catch (err) {
    $("error").textContent = `Cannot read this victim's record: ${err.message}`;
  }
}

$("victim-id").textContent = victimId;
document.title = `Vigil — ${victimId}`;
Vigil.showIdentity($("who"));
Vigil.askPurpose($("purpose-form"), load);
