"use strict";
// Shared by every page: calls to the API with the CSRF token, and small DOM helpers.
const csrfMeta = document.querySelector('meta[name="csrf-token"]');
const CSRF = csrfMeta ? csrfMeta.content : "";

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") options.headers["X-CSRF-Token"] = CSRF;
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const reply = await fetch(path, options);
  if (reply.status === 401 && location.pathname !== "/login") { location.href = "/login"; }
  if (!reply.ok) {
    let detail = reply.statusText;
    try {
      const problem = await reply.json();
      detail = typeof problem.detail === "string" ? problem.detail
        : Array.isArray(problem.detail) ? problem.detail.map((d) => d.msg).join("; ") : detail;
    } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return reply.status === 204 ? null : reply.json();
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

let statusTimer = 0;
// A short message at the bottom of the page; `action` adds a button (such as Undo).
function status(text, action) {
  const node = document.getElementById("status");
  if (!node) return;
  clearTimeout(statusTimer);
  node.replaceChildren(el("span", text));
  if (action) {
    const button = el("button", action.label, { type: "button" });
    button.addEventListener("click", () => { node.replaceChildren(); action.run(); });
    node.append(button);
  }
  statusTimer = setTimeout(() => node.replaceChildren(), action ? action.ms || 8000 : 6000);
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

// The list's date: the time today, the day this year, the full date before; never wraps.
function shortDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  if (d.getFullYear() === now.getFullYear()) {
    return d.toLocaleDateString([], { month: "short", day: "numeric" });
  }
  return d.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}

function timeline(list, entry) {
  list.replaceChildren(...entry.timeline.map((e) =>
    el("li", `${when(e.at)} — ${e.event}${e.recipient ? " " + e.recipient : ""}: ${e.detail}`)));
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

document.addEventListener("DOMContentLoaded", () => {
  const logout = document.getElementById("logout");
  if (logout) logout.addEventListener("click", async () => {
    await api("DELETE", "/api/v1/session").catch(() => null);
    location.href = "/login";
  });
});
