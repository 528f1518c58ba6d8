"use strict";
// The web mail page: folders, list, reading pane, compose; live updates from /api/v1/events.
const PAGE = 50;
const state = { folders: [], folder: null, offset: 0, total: 0, message: null, query: {}, addresses: [] };

function folderLabel(f) { return f.special_use === null && f.name !== "INBOX" ? f.name : f.name; }

let foldersRequest = 0;
async function loadFolders() {
  const mine = ++foldersRequest;
  const folders = await api("GET", "/api/v1/mailboxes");
  if (mine !== foldersRequest) return;
  state.folders = folders;
  const list = document.getElementById("folders");
  const target = document.getElementById("move-target");
  list.replaceChildren();
  target.replaceChildren();
  for (const f of state.folders) {
    const item = el("li", folderLabel(f), { "data-id": f.id, "data-name": f.name });
    if (f.unseen) item.append(el("span", f.unseen, { class: "count" }));
    if (!f.selectable) item.classList.add("noselect");
    if (state.folder && f.id === state.folder.id) item.classList.add("current");
    item.addEventListener("click", () => openFolder(f));
    list.append(item);
    if (f.selectable) target.append(el("option", f.name, { value: f.id }));
  }
  if (!state.folder) openFolder(state.folders.find((f) => f.name === "INBOX"));
}

function openFolder(folder) {
  state.folder = folder;
  state.offset = 0;
  for (const li of document.querySelectorAll("#folders li")) {
    li.classList.toggle("current", Number(li.dataset.id) === folder.id);
  }
  loadMessages();
}

let listRequest = 0;
async function loadMessages() {
  if (!state.folder) return;
  const mine = ++listRequest;  // a slower, older answer must not overwrite a newer one
  const params = new URLSearchParams({ offset: state.offset, limit: PAGE, ...state.query });
  const page = await api("GET", `/api/v1/mailboxes/${state.folder.id}/messages?${params}`);
  if (mine !== listRequest) return;
  state.total = page.total;
  const body = document.getElementById("messages");
  body.replaceChildren(...page.items.map((m) => {
    const row = el("tr", null, { "data-uid": m.uid });
    if (!m.flags.includes("\\Seen")) row.classList.add("unread");
    if (state.message && state.message.uid === m.uid) row.classList.add("current");
    row.append(el("td", m.flags.includes("\\Flagged") ? "★" : ""), el("td", m.from || m.to || ""),
      el("td", (m.subject || "(no subject)") + (m.has_attachments ? " 📎" : "")), el("td", when(m.date || m.received)));
    row.addEventListener("click", () => openMessage(m.uid));
    return row;
  }));
  const last = Math.min(state.offset + PAGE, state.total);
  document.getElementById("page-info").textContent = state.total ? `${state.offset + 1}–${last} of ${state.total}` : "empty";
}

function people(list) { return list.map((a) => (a.name ? `${a.name} <${a.address}>` : a.address)).join(", "); }

async function openMessage(uid, images) {
  const base = `/api/v1/mailboxes/${state.folder.id}/messages/${uid}`;
  const m = await api("GET", base);
  state.message = m;
  document.getElementById("reader").hidden = false;
  document.getElementById("reader-subject").textContent = m.subject || "(no subject)";
  document.getElementById("reader-from").textContent = people(m.from);
  document.getElementById("reader-to").textContent = people(m.to.concat(m.cc));
  document.getElementById("reader-date").textContent = when(m.date || m.received);
  document.getElementById("raw-link").href = m.raw_url;
  const frame = document.getElementById("reader-html");
  const text = document.getElementById("reader-text");
  if (m.has_html) {
    // srcdoc, not src: the frame is sandboxed without an origin, so the SameSite cookie would
    // not go with its request; the document carries its own policy in a meta element.
    const reply = await fetch(m.html_url + (images ? "?images=show" : ""), { credentials: "same-origin" });
    frame.srcdoc = reply.ok ? await reply.text() : "";
    frame.hidden = false;
    text.textContent = "";
  } else {
    frame.hidden = true;
    frame.removeAttribute("srcdoc");
    text.textContent = m.text || "";
  }
  document.getElementById("images-note").hidden = !(m.remote_images && !images);
  document.getElementById("attachments").replaceChildren(...m.attachments.map((a) => {
    const li = el("li");
    li.append(el("a", `${a.filename} (${a.content_type}, ${a.size} bytes)`, { href: a.url, download: a.filename }));
    return li;
  }));
  document.getElementById("flag-button").textContent = m.flags.includes("\\Flagged") ? "Unflag" : "Flag";
  if (!m.flags.includes("\\Seen")) {
    await api("POST", `${base}/flags`, { add: ["\\Seen"] });
  }
}

function compose(mode) {
  const form = document.getElementById("compose-form");
  form.reset();
  form.mode.value = mode;
  form.from.replaceChildren(...state.addresses.map((a) => el("option", a, { value: a })));
  document.getElementById("compose-error").textContent = "";
  const m = state.message;
  if (mode !== "new" && m) {
    form.reply_to_mailbox_id.value = state.folder.id;
    form.reply_to_uid.value = m.uid;
    const subject = m.subject || "";
    if (mode === "reply") {
      form.to.value = people(m.reply_to.length ? m.reply_to : m.from);
      form.subject.value = /^re:/i.test(subject) ? subject : `Re: ${subject}`;
      form.text.value = "\n\n" + (m.text || "").split("\n").map((l) => "> " + l).join("\n");
    } else {
      form.subject.value = /^fwd:/i.test(subject) ? subject : `Fwd: ${subject}`;
    }
  }
  document.getElementById("compose").showModal();
}

async function send(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  if (data.get("mode") === "new") { data.delete("reply_to_mailbox_id"); data.delete("reply_to_uid"); }
  for (const file of data.getAll("attachments")) {
    if (!(file instanceof File) || (!file.name && !file.size)) { data.delete("attachments"); break; }
  }
  try {
    await api("POST", "/api/v1/send", data);
    document.getElementById("compose").close();
    status("Message sent.");
    await loadFolders();
    if (state.message) loadMessages();
  } catch (e) {
    document.getElementById("compose-error").textContent = e.message;
  }
}

async function act(fn) {
  try { await fn(); } catch (e) { status(e.message); }
}

document.addEventListener("DOMContentLoaded", async () => {
  const me = await api("GET", "/api/v1/session");
  state.addresses = me.addresses;
  await loadFolders();
  document.getElementById("compose-button").addEventListener("click", () => compose("new"));
  document.getElementById("reply-button").addEventListener("click", () => compose("reply"));
  document.getElementById("forward-button").addEventListener("click", () => compose("forward"));
  document.getElementById("compose-form").addEventListener("submit", send);
  document.getElementById("cancel").addEventListener("click", () => document.getElementById("compose").close());
  document.getElementById("show-images").addEventListener("click", () => openMessage(state.message.uid, true));
  const base = () => `/api/v1/mailboxes/${state.folder.id}/messages`;
  document.getElementById("flag-button").addEventListener("click", () => act(async () => {
    const flagged = state.message.flags.includes("\\Flagged");
    await api("POST", `${base()}/${state.message.uid}/flags`, flagged ? { remove: ["\\Flagged"] } : { add: ["\\Flagged"] });
    await openMessage(state.message.uid);
    await loadMessages();
  }));
  document.getElementById("unread-button").addEventListener("click", () => act(async () => {
    await api("POST", `${base()}/${state.message.uid}/flags`, { remove: ["\\Seen"] });
    await loadMessages();
  }));
  document.getElementById("delete-button").addEventListener("click", () => act(async () => {
    await api("POST", `${base()}/delete`, { uids: [state.message.uid] });
    state.message = null;
    document.getElementById("reader").hidden = true;
    await loadFolders(); await loadMessages();
  }));
  document.getElementById("move-button").addEventListener("click", () => act(async () => {
    const target = Number(document.getElementById("move-target").value);
    await api("POST", `${base()}/move`, { uids: [state.message.uid], target_mailbox_id: target });
    state.message = null;
    document.getElementById("reader").hidden = true;
    await loadFolders(); await loadMessages();
  }));
  document.getElementById("new-folder").addEventListener("submit", (event) => act(async () => {
    event.preventDefault();
    await api("POST", "/api/v1/mailboxes", { name: event.target.name.value });
    event.target.reset();
    await loadFolders();
  }));
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const f = event.target;
    state.query = {};
    if (f.q.value) state.query.q = f.q.value;
    if (f.unread.checked) state.query.unread = "true";
    if (f.since.value) state.query.since = f.since.value;
    if (f.before.value) state.query.before = f.before.value;
    state.query.sort = f.sort.value;
    state.offset = 0;
    act(loadMessages);
  });
  document.getElementById("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); act(loadMessages); });
  document.getElementById("next").addEventListener("click", () => { if (state.offset + PAGE < state.total) { state.offset += PAGE; act(loadMessages); } });
  // New mail without reload: the server says which folders changed.
  const events = new EventSource("/api/v1/events");
  events.addEventListener("ready", () => document.body.setAttribute("data-live", "yes"));
  events.addEventListener("change", (event) => act(async () => {
    const change = JSON.parse(event.data);
    await loadFolders();
    if (change.all || (state.folder && change.mailboxes.includes(state.folder.id))) await loadMessages();
  }));
});
