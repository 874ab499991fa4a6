// What both console pages share: calls to vigild's console endpoints, the purpose every read is audited
// under, and how times are shown. No library: plain browser JavaScript.
"use strict";

const $ = (id) => document.getElementById(id);

const Vigil = {
  // The purpose the user gave, kept for this browser tab only.
  purpose() { return sessionStorage.getItem("vigil.purpose") || ""; },
  setPurpose(text) { sessionStorage.setItem("vigil.purpose", text.trim()); },

  // fetch, JSON in and out; throws Error(message) with .code for an error answer.
  async call(path, options = {}) {
    const res = await fetch(path, { credentials: "same-origin", ...options });
    const body = await res.json().catch(() => ({ code: "UNKNOWN", message: `HTTP ${res.status}` }));
    if (!res.ok) {
      const err = new Error(body.message || `HTTP ${res.status}`);
      err.code = body.code;
      throw err;
    }
    return body;
  },

  escape(text) {
    return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                                          "'": "&#39;" }[c]));
  },

  time(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString("en-GB", { day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit",
                                       second: "2-digit" });
  },

  // "3h 12m", "2d 4h", "45s"
  span(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
    if (d > 0) return `${d}d ${h % 24}h`;
    if (h > 0) return `${h}h ${m % 60}m`;
    return `${m}m`;
  },

  // The purpose form: shown until the user gives one; `start` runs once there is one.
  askPurpose(form, start) {
    const input = form.querySelector("input[name=purpose]");
    input.value = Vigil.purpose();
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!input.value.trim()) return input.focus();
      const changed = input.value.trim() !== Vigil.purpose();
      Vigil.setPurpose(input.value);
      if (changed) start();
    });
    if (Vigil.purpose()) start(); else input.focus();
  },

  // Who the user is, shown in `el`; the session ({identity, tls, rules}), or null.
  async showIdentity(el) {
    try {
      const s = await Vigil.call("/api/session");
      el.textContent = `Signed in as ${s.identity}${s.tls ? "" : " (development, no TLS)"}`;
      return s;
    } catch (e) {
      el.textContent = e.message;
      return null;
    }
  },
};
