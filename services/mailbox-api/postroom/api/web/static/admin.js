"use strict";
// The admin console: dashboard, domains (DKIM keys, DNS), accounts, aliases, queue. One
// section at a time, chosen by the address's #fragment.
const $ = (id) => document.getElementById(id);
const SECTIONS = ["dashboard", "domains", "accounts", "aliases", "queue"];
const MIB = 1024 * 1024;

async function act(fn) {
  try { await fn(); } catch (e) { status(e.message); }
}

function button(label, fn, attrs) {
  const node = el("button", label, { type: "button", ...(attrs || {}) });
  node.addEventListener("click", () => act(fn));
  return node;
}

function cells(row, values) {
  for (const v of values) row.append(v instanceof Node ? wrap(v) : el("td", v));
  return row;
}

function wrap(...nodes) { const td = el("td"); td.append(...nodes); return td; }

// --- charts: bars drawn as SVG, each with its figures as a table for screen readers ---------

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function barChart(figure, title, labels, series) {
  const width = 720, height = 200, left = 34, bottom = 22;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const slot = (width - left) / Math.max(1, labels.length);
  const bar = Math.max(1, (slot - 4) / series.length);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  chart.append(svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, stroke: "currentColor", "stroke-opacity": ".3" }));
  const top = svg("text", { x: 0, y: 12 }); top.textContent = String(max); chart.append(top);
  labels.forEach((label, i) => {
    series.forEach((s, j) => {
      const h = ((height - bottom - 16) * s.values[i]) / max;
      const rect = svg("rect", { x: left + i * slot + 2 + j * bar, y: height - bottom - h, width: bar, height: h, class: `series-${j}` });
      const tip = svg("title", {}); tip.textContent = `${label}: ${s.values[i]} ${s.name}`; rect.append(tip);
      chart.append(rect);
    });
    if (labels.length <= 12 || i % Math.ceil(labels.length / 12) === 0) {
      const text = svg("text", { x: left + i * slot + 2, y: height - 6 });
      text.textContent = label;
      chart.append(text);
    }
  });
  const legend = el("div", null, { class: "legend" });
  series.forEach((s, j) => { const item = el("span"); item.append(el("span", null, { class: `swatch series-${j}` }), s.name); legend.append(item); });
  const details = el("details");
  details.append(el("summary", "Figures"));
  const table = el("table", null, { class: "grid" });
  const head = el("tr"); cells(head, [""].concat(series.map((s) => s.name))); table.append(head);
  labels.forEach((label, i) => table.append(cells(el("tr"), [label].concat(series.map((s) => s.values[i])))));
  details.append(table);
  figure.replaceChildren(chart, legend, details);
}

async function loadDashboard() {
  const d = await api("GET", "/api/v1/admin/dashboard");
  for (const state of ["queued", "deferred", "held"]) $(`depth-${state}`).textContent = d.queue[state] || 0;
  const labels = d.hours.map((h) => new Date(h.start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  barChart($("chart-mail"), "Messages per hour", labels, [
    { name: "in (received and submitted)", values: d.hours.map((h) => h.received + h.submitted) },
    { name: "out (delivered here and elsewhere)", values: d.hours.map((h) => h.delivered_local + h.delivered_remote) },
    { name: "deferred attempts", values: d.hours.map((h) => h.deferred) },
  ]);
  if (d.deferrals.length) {
    barChart($("chart-deferrals"), "Deferred deliveries by destination", d.deferrals.map((x) => x.domain),
      [{ name: "deferred deliveries", values: d.deferrals.map((x) => x.deliveries) }]);
  } else {
    $("chart-deferrals").replaceChildren(el("p", "Nothing is deferred.", { class: "muted" }));
  }
  if (d.spam.length) {
    barChart($("chart-spam"), "Spam filter actions", d.spam.map((x) => x.action),
      [{ name: "messages", values: d.spam.map((x) => x.messages) }]);
  } else {
    $("chart-spam").replaceChildren(el("p", "The spam filter acted on nothing (or is not configured).", { class: "muted" }));
  }
}

// --- domains ----------------------------------------------------------------------------

let currentDomain = null;
async function loadDomains() {
  const domains = await api("GET", "/api/v1/admin/domains");
  $("domain-rows").replaceChildren(...domains.map((d) => cells(el("tr", null, { "data-name": d.name }), [
    d.name, when(d.created_at),
    wrap(button("DKIM and DNS", () => showDomain(d.name)),
      button("Remove", async () => {
        if (!confirm(`Remove the domain ${d.name}?`)) return;
        await api("DELETE", `/api/v1/admin/domains/${encodeURIComponent(d.name)}`);
        status(`Domain ${d.name} removed.`);
        if (currentDomain === d.name) $("domain-detail").hidden = true;
        await loadDomains();
      }, { class: "danger" })),
  ])));
}

async function showDomain(name) {
  currentDomain = name;
  $("domain-detail").hidden = false;
  $("domain-detail-title").textContent = name;
  $("dns-verdict").textContent = "";
  await Promise.all([loadDkim(), loadDns()]);
}

async function loadDkim() {
  const keys = await api("GET", `/api/v1/admin/domains/${encodeURIComponent(currentDomain)}/dkim`);
  $("dkim-rows").replaceChildren(...keys.map((k) => cells(el("tr", null, { "data-selector": k.selector }), [
    k.selector, k.algorithm, k.state, wrap(el("code", `${k.record_name} TXT "${k.record}"`)),
    wrap(button("Remove", async () => {
      if (!confirm(`Remove the key ${k.selector}?`)) return;
      await api("DELETE", `/api/v1/admin/domains/${encodeURIComponent(currentDomain)}/dkim/${encodeURIComponent(k.selector)}`);
      status(`Key ${k.selector} removed.`);
      await Promise.all([loadDkim(), loadDns()]);
    }, { class: "danger" })),
  ])));
  if (!keys.length) $("dkim-rows").append(cells(el("tr"), ["No key yet: mail from this domain is not signed.", "", "", "", ""]));
}

async function loadDns() {
  const dns = await api("GET", `/api/v1/admin/domains/${encodeURIComponent(currentDomain)}/dns`);
  $("dns-rows").replaceChildren(...dns.records.map((r) => cells(el("tr", null, { "data-purpose": r.purpose }), [r.purpose, r.name, r.type, wrap(el("code", r.value)), ""])));
  $("dns-zone").textContent = dns.zone;
}

async function checkDns() {
  $("dns-verdict").textContent = "Asking DNS…";
  const result = await api("GET", `/api/v1/admin/domains/${encodeURIComponent(currentDomain)}/dns/check`);
  $("dns-rows").replaceChildren(...result.findings.map((f) => {
    const verdict = el("span", f.status, { class: `status-${f.status}` });
    const detail = wrap(verdict);
    if (f.status !== "ok") detail.append(el("div", f.found.length ? `found: ${f.found.join(" | ")}` : f.note || "no answer", { class: "muted" }));
    return cells(el("tr", null, { "data-purpose": f.purpose }), [f.purpose, f.name, f.type, wrap(el("code", f.value)), detail]);
  }));
  const bad = result.findings.filter((f) => f.status !== "ok").length;
  $("dns-verdict").textContent = result.ok ? "Every record is in place." : `${bad} record(s) need attention.`;
}

// --- accounts ---------------------------------------------------------------------------

let resetting = null;
async function loadAccounts() {
  const [accounts, usage] = await Promise.all([api("GET", "/api/v1/admin/accounts"), api("GET", "/api/v1/admin/usage")]);
  const used = new Map(usage.map((u) => [u.address, u]));
  $("account-rows").replaceChildren(...accounts.map((a) => {
    const u = used.get(a.address) || { used_bytes: 0, messages: 0 };
    const share = a.quota_bytes ? ` (${Math.round((100 * u.used_bytes) / a.quota_bytes)}%)` : "";
    return cells(el("tr", null, { "data-address": a.address }), [
      a.address, a.is_admin ? "administrator" : "user", a.disabled ? "disabled" : "active",
      `${bytes(u.used_bytes)} in ${u.messages} messages${share}`,
      a.quota_bytes === null ? "none" : bytes(a.quota_bytes),
      wrap(
        button(a.disabled ? "Enable" : "Disable", async () => {
          await api("PATCH", `/api/v1/admin/accounts/${encodeURIComponent(a.address)}`, { disabled: !a.disabled });
          status(`${a.address} ${a.disabled ? "enabled" : "disabled"}.`);
          await loadAccounts();
        }),
        button("Reset password", () => { resetting = a.address; $("password-form").reset(); $("password-title").textContent = `New password for ${a.address}`; $("password-dialog").showModal(); }),
        button("Delete", async () => {
          if (!confirm(`Delete ${a.address} and all its mail?`)) return;
          await api("DELETE", `/api/v1/admin/accounts/${encodeURIComponent(a.address)}`);
          status(`${a.address} deleted.`);
          await loadAccounts();
        }, { class: "danger" })),
    ]);
  }));
}

// --- aliases ----------------------------------------------------------------------------

async function loadAliases() {
  const aliases = await api("GET", "/api/v1/admin/aliases");
  $("alias-rows").replaceChildren(...aliases.map((a) => cells(el("tr"), [a.source, a.destination,
    wrap(button("Remove", async () => {
      await api("DELETE", `/api/v1/admin/aliases?${new URLSearchParams({ source: a.source, destination: a.destination })}`);
      status(`Alias ${a.source} → ${a.destination} removed.`);
      await loadAliases();
    }, { class: "danger" }))])));
}

// --- queue ------------------------------------------------------------------------------

async function loadQueue() {
  const state = $("queue-state").value;
  const entries = await api("GET", "/api/v1/admin/queue" + (state ? `?state=${state}` : ""));
  $("queue-rows").replaceChildren(...entries.map((e) => {
    const held = e.deliveries.some((d) => d.state === "held");
    const actions = wrap(button("Timeline", () => showEntry(e.id)), button("Retry", async () => {
      const r = await api("POST", `/api/v1/admin/queue/${e.id}/retry`);
      status(`${r.deliveries} deliveries due now.`);
      await loadQueue();
    }));
    if (held) actions.append(button("Release", async () => {
      const r = await api("POST", `/api/v1/admin/queue/${e.id}/release`);
      status(`${r.deliveries} deliveries released.`);
      await loadQueue();
    }));
    actions.append(button("Delete", async () => {
      if (!confirm(`Delete queue entry ${e.id}? No bounce is sent.`)) return;
      await api("DELETE", `/api/v1/admin/queue/${e.id}`);
      status(`Entry ${e.id} deleted.`);
      await loadQueue();
    }, { class: "danger" }));
    return cells(el("tr", null, { "data-id": e.id }), [e.id, when(e.received_at), e.reverse_path || "<>",
      e.deliveries.map((d) => `${d.recipient} (${d.state}${d.last_error ? ": " + d.last_error : ""})`).join(", "), actions]);
  }));
  if (!entries.length) $("queue-rows").append(cells(el("tr"), ["The queue is empty.", "", "", "", ""]));
}

async function showEntry(id) {
  const entry = await api("GET", `/api/v1/admin/queue/${id}`);
  $("entry").hidden = false;
  $("entry-id").textContent = id;
  timeline($("entry-timeline"), entry);
}

// --- wiring -----------------------------------------------------------------------------

const LOADERS = { dashboard: loadDashboard, domains: loadDomains, accounts: loadAccounts, aliases: loadAliases, queue: loadQueue };
function route() {
  const name = SECTIONS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "dashboard";
  for (const s of SECTIONS) $(s).hidden = s !== name;
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.getAttribute("href") === `#${name}`) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  act(LOADERS[name]);
}

function onSubmit(id, fn) {
  $(id).addEventListener("submit", (event) => { event.preventDefault(); act(() => fn(event.target)); });
}

document.addEventListener("DOMContentLoaded", () => {
  addEventListener("hashchange", route);
  onSubmit("domain-form", async (form) => {
    const d = await api("POST", "/api/v1/admin/domains", { name: form.name.value.trim() });
    form.reset();
    status(`Domain ${d.name} added.`);
    await loadDomains();
  });
  onSubmit("dkim-form", async (form) => {
    const k = await api("POST", `/api/v1/admin/domains/${encodeURIComponent(currentDomain)}/dkim`, { algorithm: form.algorithm.value });
    status(`Key ${k.selector} made: publish its record.`);
    await Promise.all([loadDkim(), loadDns()]);
  });
  $("dkim-rotate").addEventListener("click", () => act(async () => {
    const r = await api("POST", `/api/v1/admin/domains/${encodeURIComponent(currentDomain)}/dkim/rotate`);
    status(r.step === "pending" ? "New keys made: publish them, then rotate again." : "The new keys now sign; the old ones are retired.");
    await Promise.all([loadDkim(), loadDns()]);
  }));
  $("dns-check").addEventListener("click", () => act(checkDns));
  onSubmit("account-form", async (form) => {
    const body = { address: form.address.value.trim(), password: form.password.value, is_admin: form.is_admin.checked };
    if (form.quota.value) body.quota_bytes = Number(form.quota.value) * MIB;
    const a = await api("POST", "/api/v1/admin/accounts", body);
    form.reset();
    status(`Account ${a.address} added.`);
    await loadAccounts();
  });
  onSubmit("password-form", async (form) => {
    await api("PATCH", `/api/v1/admin/accounts/${encodeURIComponent(resetting)}`, { password: form.password.value });
    $("password-dialog").close();
    status(`Password of ${resetting} reset; its sessions were ended.`);
  });
  $("password-cancel").addEventListener("click", () => $("password-dialog").close());
  onSubmit("alias-form", async (form) => {
    const a = await api("POST", "/api/v1/admin/aliases", { source: form.source.value.trim(), destination: form.destination.value.trim() });
    form.reset();
    status(`Alias ${a.source} → ${a.destination} added.`);
    await loadAliases();
  });
  $("queue-state").addEventListener("change", () => act(loadQueue));
  route();
});
