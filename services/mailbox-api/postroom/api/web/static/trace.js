"use strict";
// Message trace: find by Message-ID, sender, recipient or time; show the timeline.
document.getElementById("trace-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(event.target)) {
    if (v) params.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
  }
  try {
    const found = await api("GET", `/api/v1/trace?${params}`);
    document.getElementById("results").replaceChildren(...found.map((e) => {
      const row = el("tr", null, { "data-id": e.id });
      row.append(el("td", e.id), el("td", when(e.received_at)), el("td", e.reverse_path || "<>"),
        el("td", e.message_id || ""), el("td", e.deliveries.map((d) => `${d.recipient}: ${d.state}`).join(", ")));
      row.addEventListener("click", async () => {
        const entry = await api("GET", `/api/v1/trace/${e.id}`);
        document.getElementById("entry").hidden = false;
        document.getElementById("entry-id").textContent = e.message_id || e.id;
        timeline(document.getElementById("entry-timeline"), entry);
      });
      return row;
    }));
    status(`${found.length} found.`);
  } catch (e) { status(e.message); }
});
