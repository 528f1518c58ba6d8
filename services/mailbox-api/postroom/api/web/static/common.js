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
    try { detail = (await reply.json()).detail || detail; } catch (e) { /* not JSON */ }
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

function status(text) {
  const node = document.getElementById("status");
  if (node) node.textContent = text;
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

function timeline(list, entry) {
  list.replaceChildren(...entry.timeline.map((e) =>
    el("li", `${when(e.at)} — ${e.event}${e.recipient ? " " + e.recipient : ""}: ${e.detail}`)));
}

document.addEventListener("DOMContentLoaded", () => {
  const logout = document.getElementById("logout");
  if (logout) logout.addEventListener("click", async () => {
    await api("DELETE", "/api/v1/session").catch(() => null);
    location.href = "/login";
  });
});
