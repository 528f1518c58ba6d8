"use strict";
// The queue page (admins): pending, held, delivered or bounced entries; show, retry, release, delete.
async function loadQueue() {
  const state = document.getElementById("queue-state").value;
  const entries = await api("GET", "/api/v1/admin/queue" + (state ? `?state=${state}` : ""));
  document.getElementById("queue").replaceChildren(...entries.map((e) => {
    const row = el("tr", null, { "data-id": e.id });
    const actions = el("td");
    const held = e.deliveries.some((d) => d.state === "held");
    const buttons = [["Show", show], ["Retry", retry], ...(held ? [["Release", release]] : []), ["Delete", remove]];
    for (const [label, fn] of buttons) {
      const button = el("button", label, { type: "button" });
      button.addEventListener("click", () => fn(e.id).catch((err) => status(err.message)));
      actions.append(button);
    }
    row.append(el("td", e.id), el("td", when(e.received_at)), el("td", e.reverse_path || "<>"),
      el("td", e.deliveries.map((d) => `${d.recipient} (${d.state}${d.state === "held" ? ": " + d.last_failure : d.last_error ? ": " + d.last_error : ""})`).join(", ")), actions);
    return row;
  }));
}
async function show(id) {
  const entry = await api("GET", `/api/v1/admin/queue/${id}`);
  document.getElementById("entry").hidden = false;
  document.getElementById("entry-id").textContent = id;
  timeline(document.getElementById("entry-timeline"), entry);
}
async function retry(id) { const r = await api("POST", `/api/v1/admin/queue/${id}/retry`); status(`${r.deliveries} deliveries due now.`); await loadQueue(); }
async function release(id) { const r = await api("POST", `/api/v1/admin/queue/${id}/release`); status(`${r.deliveries} deliveries released.`); await loadQueue(); }
async function remove(id) { await api("DELETE", `/api/v1/admin/queue/${id}`); status(`Entry ${id} deleted.`); await loadQueue(); }
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("queue-state").addEventListener("change", () => loadQueue().catch((e) => status(e.message)));
  loadQueue().catch((e) => status(e.message));
});
