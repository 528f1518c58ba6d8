"use strict";
// The web mail page: folders, a virtual message list, the reader with its conversation,
// compose, keyboard shortcuts; live updates from /api/v1/events.
//
// The list holds only what is on screen: rows sit at index × ROW pixels in a list as tall as
// the whole folder, and pages of PAGE messages are fetched by offset as they scroll into view,
// so a folder of 100,000 messages costs what a folder of 30 does.
const ROW = 58;
const PAGE = 100;
const OVERSCAN = 6;
const DRAG_TYPE = "application/x-postroom-selection";

const state = {
  folders: [], folder: null, addresses: [],
  total: 0, pages: new Map(), loading: new Set(), generation: 0,
  sort: "arrival", descending: true, filter: "", query: "",
  cursor: -1, selected: new Set(), message: null, images: false,
  // One row per conversation (a preference); then rows and the selection are conversations.
  conversations: false,
  // Select-all: every message the list shows (the folder, filtered or searched), not only the
  // rows loaded so far; bulk actions then name them by the list's search and filter.
  all: false,
};
// A row's key in the selection: its conversation or its message.
const keyOf = (m) => (state.conversations && m.conversation ? m.conversation.id : m.uid);
const $ = (id) => document.getElementById(id);
const view = (name) => { document.querySelector(".mail").dataset.view = name; };
const messagesUrl = (id) => `/api/v1/mailboxes/${id ?? state.folder.id}/messages`;

async function act(fn) {
  try { await fn(); } catch (e) { status(e.message); }
}

// --- folders ------------------------------------------------------------------------------

const depth = (name) => name.split("/").length - 1;
const leaf = (name) => name.split("/").pop();
const special = (use) => state.folders.find((f) => f.special_use === use);

let foldersRequest = 0;
async function loadFolders() {
  const mine = ++foldersRequest;
  const folders = await api("GET", "/api/v1/mailboxes");
  if (mine !== foldersRequest) return;
  // INBOX first, then the rest by path, so children follow their parents.
  folders.sort((a, b) => (a.name === "INBOX" ? -1 : b.name === "INBOX" ? 1 : a.name.localeCompare(b.name)));
  state.folders = folders;
  if (state.folder) state.folder = folders.find((f) => f.id === state.folder.id) || null;
  const list = $("folders");
  list.replaceChildren(...folders.map((f) => {
    const link = el("a", null, { href: `#folder-${f.id}`, "data-id": f.id });
    link.style.paddingLeft = `${0.4 + depth(f.name) * 1.1}em`;
    link.append(el("span", leaf(f.name), { class: "name" }));
    if (f.unseen) link.append(el("span", f.unseen, { class: "count", "aria-label": `${f.unseen} unread` }));
    if (state.folder && f.id === state.folder.id) link.setAttribute("aria-current", "true");
    link.addEventListener("click", (event) => { event.preventDefault(); if (f.selectable) openFolder(f); });
    link.addEventListener("dragover", (event) => {
      if (f.selectable && event.dataTransfer.types.includes(DRAG_TYPE)) {
        event.preventDefault();
        link.classList.add("drop");
      }
    });
    link.addEventListener("dragleave", () => link.classList.remove("drop"));
    link.addEventListener("drop", (event) => {
      event.preventDefault();
      link.classList.remove("drop");
      const chosen = JSON.parse(event.dataTransfer.getData(DRAG_TYPE) || "{}");
      act(() => moveTo(chosen, f));
    });
    const item = el("li", null, { "data-name": f.name });
    item.append(link);
    return item;
  }));
  const targets = folders.filter((f) => f.selectable).map((f) => el("option", f.name, { value: f.id }));
  $("move-target").replaceChildren(...targets.map((o) => o.cloneNode(true)));
  $("bulk-target").replaceChildren(...targets);
  if (!state.folder) openFolder(folders.find((f) => f.name === "INBOX"));
  else $("list-title").textContent = leaf(state.folder.name);
}

function openFolder(folder) {
  state.folder = folder;
  for (const a of document.querySelectorAll("#folders a")) {
    if (Number(a.dataset.id) === folder.id) a.setAttribute("aria-current", "true");
    else a.removeAttribute("aria-current");
  }
  $("list-title").textContent = leaf(folder.name);
  state.query = "";
  $("q").value = "";
  resetList();
  view("list");
}

function openFolderDialog(mode) {
  const form = $("folder-form");
  form.reset();
  form.dataset.mode = mode;
  $("folder-error").textContent = "";
  $("folder-dialog-title").textContent = mode === "rename" ? `Rename ${state.folder.name}` : "New folder";
  const parents = [el("option", "(top level)", { value: "" })].concat(
    state.folders.filter((f) => f.name !== "INBOX" && !(mode === "rename" && (f.id === state.folder.id || f.name.startsWith(state.folder.name + "/"))))
      .map((f) => el("option", f.name, { value: f.name })));
  form.parent.replaceChildren(...parents);
  if (mode === "rename") {
    form.name.value = leaf(state.folder.name);
    form.parent.value = state.folder.name.includes("/") ? state.folder.name.slice(0, state.folder.name.lastIndexOf("/")) : "";
  }
  $("folder-dialog").showModal();
}

async function saveFolder(event) {
  event.preventDefault();
  const form = event.target;
  const name = (form.parent.value ? form.parent.value + "/" : "") + form.name.value.trim();
  try {
    if (form.dataset.mode === "rename") {
      await api("PATCH", `/api/v1/mailboxes/${state.folder.id}`, { name });
    } else {
      await api("POST", "/api/v1/mailboxes", { name });
    }
    $("folder-dialog").close();
    status(form.dataset.mode === "rename" ? `Renamed to ${name}.` : `Folder ${name} created.`);
    await loadFolders();
  } catch (e) {
    $("folder-error").textContent = e.message;
  }
}

async function deleteFolder() {
  const folder = state.folder;
  if (folder.name === "INBOX" || folder.special_use) { status(`${folder.name} cannot be deleted.`); return; }
  if (!confirm(`Delete the folder ${folder.name} and the ${folder.messages} messages in it?`)) return;
  await api("DELETE", `/api/v1/mailboxes/${folder.id}`);
  state.folder = null;
  status(`Folder ${folder.name} deleted.`);
  await loadFolders();
}

// --- the list -----------------------------------------------------------------------------

function resetList(keepScroll) {
  state.generation += 1;
  state.pages = new Map();
  state.loading = new Set();
  const scroller = $("list-scroll");
  if (!keepScroll) {
    state.selected.clear();
    state.all = false;
    state.cursor = -1;
    scroller.scrollTop = 0;
  }
  // Busy until the first page is drawn: screen readers (and tests) know the list is stale.
  scroller.setAttribute("aria-busy", "true");
  const generation = state.generation;
  return fetchPage(0).then(() => {
    draw();
    if (generation === state.generation) scroller.setAttribute("aria-busy", "false");
  });
}

function listParams(offset) {
  const params = new URLSearchParams({ offset, limit: PAGE, sort: state.sort, order: state.descending ? "desc" : "asc" });
  if (state.filter === "unread") params.set("unread", "true");
  if (state.filter === "flagged") params.set("flagged", "true");
  if (state.query) params.set("query", state.query);
  if (state.conversations) params.set("group", "conversation");
  return params;
}

async function fetchPage(index) {
  if (state.pages.has(index) || state.loading.has(index) || !state.folder) return;
  const generation = state.generation;
  state.loading.add(index);
  try {
    const page = await api("GET", `${messagesUrl()}?${listParams(index * PAGE)}`);
    if (generation !== state.generation) return;  // the view changed meanwhile
    if (page.mailbox_id !== state.folder.id) {  // "in:Folder" searched another folder
      const named = state.folders.find((f) => f.id === page.mailbox_id);
      if (named) { state.folder = named; $("list-title").textContent = `${leaf(named.name)}: ${state.query}`; }
    }
    state.total = page.total;
    state.pages.set(index, page.items);
  } finally {
    state.loading.delete(index);
  }
}

const itemAt = (i) => { const page = state.pages.get(Math.floor(i / PAGE)); return page ? page[i % PAGE] : undefined; };
const loadedItems = () => [...state.pages.values()].flat();

function paperclip() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 16 16"); svg.setAttribute("width", "14"); svg.setAttribute("height", "14");
  svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "has attachments");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", "M10.5 3.5v7a2.5 2.5 0 0 1-5 0v-8a1.5 1.5 0 0 1 3 0v7.5a.5.5 0 0 1-1 0V4");
  path.setAttribute("fill", "none"); path.setAttribute("stroke", "currentColor"); path.setAttribute("stroke-width", "1.2");
  svg.append(path);
  return svg;
}

// "Ann <ann@x.test>, bob@y.test" as "Ann, bob@y.test": names where there are names.
function displayNames(text) {
  if (!text) return "";
  return text.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/).map((one) => {
    const match = one.trim().match(/^"?(.*?)"?\s*<([^>]*)>$/);
    return match ? match[1] || match[2] : one.trim();
  }).join(", ");
}

function row(i, m) {
  const li = el("li", null, { "data-index": i, "aria-setsize": state.total, "aria-posinset": i + 1 });
  li.style.top = `${i * ROW}px`;
  if (!m) {
    li.classList.add("loading");
    li.append(el("span", "Loading…", { class: "open" }));
    return li;
  }
  li.dataset.uid = m.uid;
  const key = keyOf(m);
  li.dataset.key = key;
  li.draggable = true;
  const c = state.conversations ? m.conversation : null;
  const unread = c ? c.unread > 0 : !m.flags.includes("\\Seen");
  if (unread) li.classList.add("unread");
  const chosen = state.all || state.selected.has(key);
  if (chosen) li.classList.add("selected");
  if (i === state.cursor) li.classList.add("current");
  const subject = m.subject || "(no subject)";
  const box = el("input", null, { type: "checkbox", "aria-label": `Select: ${subject}` });
  box.checked = chosen;
  box.addEventListener("change", () => { toggleSelected(key, box.checked); });
  const marks = el("span", null, { class: "marks" });
  if (m.flags.includes("\\Flagged")) marks.append(el("span", "★", { "aria-label": "flagged", role: "img" }));
  if (m.has_attachments) marks.append(paperclip());
  const open = el("a", null, { class: "open", href: `#message-${m.uid}` });
  const sent = state.folder && ["\\Sent", "\\Drafts"].includes(state.folder.special_use);
  const who = sent ? `To: ${displayNames(m.to)}` : displayNames(m.from || m.to);
  const date = c ? c.newest : m.date || m.received;
  const whoNode = el("span", who, { class: "who" });
  if (c && c.messages > 1) whoNode.append(" ", el("span", c.messages, { class: "thread-count", title: `${c.messages} messages in this conversation` }), el("span", " messages", { class: "visually-hidden" }));
  open.append(whoNode, el("span", shortDate(date), { class: "when", title: when(date) }));
  const line = el("span", null, { class: "subject" });
  line.append(el("b", subject));
  if (m.preview) line.append(` — ${m.preview}`);
  if (unread) open.append(el("span", "unread", { class: "visually-hidden" }));
  open.append(line);
  open.addEventListener("click", (event) => {
    event.preventDefault();
    performance.mark("postroom:open");
    state.cursor = i;
    act(() => openMessage(m.uid));
  });
  li.addEventListener("dragstart", (event) => {
    const dragged = chosen ? selection() : state.conversations ? { threads: [key] } : { uids: [m.uid] };
    event.dataTransfer.setData(DRAG_TYPE, JSON.stringify(dragged));
    event.dataTransfer.setData("text/plain", `${countOf(dragged)} ${unit(countOf(dragged))}`);
    event.dataTransfer.effectAllowed = "move";
  });
  li.append(box, marks, open);
  return li;
}

let frame = 0;
function render() {
  cancelAnimationFrame(frame);
  frame = requestAnimationFrame(draw);
}

function draw() {
  const scroller = $("list-scroll");
  const list = $("messages");
  list.style.height = `${state.total * ROW}px`;
  $("list-empty").hidden = state.total > 0 || !state.pages.has(0);
  const first = Math.max(0, Math.floor(scroller.scrollTop / ROW) - OVERSCAN);
  const last = Math.min(state.total, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW) + OVERSCAN);
  const rows = [];
  for (let i = first; i < last; i++) {
    const m = itemAt(i);
    if (!m) fetchPage(Math.floor(i / PAGE)).then(render).catch((e) => status(e.message));
    rows.push(row(i, m));
  }
  const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement.closest("li") : null;
  const focusIndex = focused ? focused.dataset.index : null;
  list.replaceChildren(...rows);
  if (focusIndex !== null) {
    const again = list.querySelector(`li[data-index="${focusIndex}"] .open`);
    if (again) again.focus({ preventScroll: true });
  }
  $("list-count").textContent = state.total ? `${state.total.toLocaleString()} ${unit(state.total)}` : "";
  updateBulk();
  // Timings for make bench: the first page of the list on screen (the frame after this one).
  if (!listPainted && rows.some((r) => r.dataset.uid)) {
    listPainted = true;
    requestAnimationFrame(() => performance.mark("postroom:list-painted"));
  }
}
let listPainted = false;

const unit = (n) => (state.conversations ? (n === 1 ? "conversation" : "conversations") : n === 1 ? "message" : "messages");

// In place, not by drawing the rows again: a click on a row being replaced would be lost.
function toggleSelected(key, on) {
  if (state.all && !on) {
    // Out of "all": what stays selected is every loaded row but this one.
    state.all = false;
    for (const m of loadedItems()) state.selected.add(keyOf(m));
    state.selected.delete(key);
    draw();
    return;
  }
  if (on) state.selected.add(key); else state.selected.delete(key);
  const li = $("messages").querySelector(`li[data-key="${key}"]`);
  if (li) {
    li.classList.toggle("selected", on);
    li.querySelector("input[type=checkbox]").checked = on;
  }
  updateBulk();
}

// The selection as a bulk request names it: every match of the list, conversations or UIDs.
function selection() {
  if (state.all) {
    return { match: { query: state.query || null, unread: state.filter === "unread" ? true : null, flagged: state.filter === "flagged" ? true : null } };
  }
  return state.conversations ? { threads: [...state.selected] } : { uids: [...state.selected] };
}

// How many rows a request names (for the status line).
const countOf = (chosen) => (chosen.match ? state.total : (chosen.threads || chosen.uids).length);

function updateBulk() {
  const n = state.all ? state.total : state.selected.size;
  for (const id of ["bulk-read", "bulk-unread", "bulk-flag", "bulk-target", "bulk-move", "bulk-delete"]) $(id).disabled = n === 0;
  $("selection-count").textContent = n ? `${n.toLocaleString()} selected` : "Select all";
  const all = $("select-all");
  all.checked = state.all;
  all.indeterminate = !state.all && n > 0;
  const banner = $("select-banner");
  banner.hidden = !state.all;
  if (state.all) {
    const where = state.query ? "this search" : state.folder ? leaf(state.folder.name) : "this folder";
    $("select-banner-text").textContent = `All ${state.total.toLocaleString()} ${unit(state.total)} in ${where} are selected.`;
  }
}

function clearSelection() {
  state.all = false;
  state.selected.clear();
  draw();
}

async function bulkFlags(body) {
  await api("POST", `${messagesUrl()}/flags`, { ...selection(), ...body });
  state.all = false;
  state.selected.clear();
  await Promise.all([loadFolders(), resetList(true)]);
}

async function moveTo(chosen, folder) {
  const n = countOf(chosen);
  if (!n) return;
  if (folder.id === state.folder.id) return;
  await api("POST", `${messagesUrl()}/move`, { ...chosen, target_mailbox_id: folder.id });
  status(`${n === 1 && chosen.uids ? "Message" : `${n.toLocaleString()} ${chosen.uids ? (n === 1 ? "message" : "messages") : unit(n)}`} moved to ${folder.name}.`);
  afterRemoval(chosen);
}

async function deleteMessages(chosen) {
  const n = countOf(chosen);
  if (!n) return;
  const result = await api("POST", `${messagesUrl()}/delete`, chosen);
  const what = n === 1 && chosen.uids ? "Message" : `${n.toLocaleString()} ${chosen.uids ? (n === 1 ? "message" : "messages") : unit(n)}`;
  status(result.deleted.length ? `${what} deleted.` : `${what} moved to Trash.`);
  afterRemoval(chosen);
}

function afterRemoval(chosen) {
  if (chosen.uids) for (const uid of chosen.uids) state.selected.delete(uid);
  else { state.selected.clear(); state.all = false; }
  if (state.message && (!chosen.uids || chosen.uids.includes(state.message.uid))) closeReader();
  loadFolders().catch(() => null);
  resetList(true).catch((e) => status(e.message));
}

function moveCursor(delta) {
  if (!state.total) return;
  state.cursor = Math.min(state.total - 1, Math.max(0, state.cursor + delta));
  const scroller = $("list-scroll");
  const top = state.cursor * ROW;
  if (top < scroller.scrollTop) scroller.scrollTop = top;
  else if (top + ROW > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top + ROW - scroller.clientHeight;
  draw();
  const node = $("messages").querySelector(`li[data-index="${state.cursor}"] .open`);
  if (node) node.focus({ preventScroll: true });
  const m = itemAt(state.cursor);
  if (m && state.message && innerWidth > 760) act(() => openMessage(m.uid));
}

// --- reading ------------------------------------------------------------------------------

function people(list) { return list.map((a) => (a.name ? `${a.name} <${a.address}>` : a.address)).join(", "); }

function closeReader() {
  state.message = null;
  $("reader").hidden = true;
  $("reader-empty").hidden = false;
  view("list");
}

let readRequest = 0;
async function openMessage(uid, images, mailboxId) {
  const mine = ++readRequest;
  const box = mailboxId ?? state.folder.id;
  const base = `${messagesUrl(box)}/${uid}`;
  const m = await api("GET", base);
  if (mine !== readRequest) return;
  if (m.images_allowed) images = true;  // the reader always shows this sender's images
  state.message = m;
  state.images = Boolean(images);
  $("reader").hidden = false;
  $("reader-empty").hidden = true;
  view("message");
  $("reader-subject").textContent = m.subject || "(no subject)";
  $("reader-from").textContent = people(m.from);
  $("reader-to").textContent = people(m.to.concat(m.cc));
  $("reader-date").textContent = when(m.date || m.received);
  $("original-link").href = `${m.raw_url}?view=text`;
  const frameNode = $("reader-html");
  const text = $("reader-text");
  if (m.has_html) {
    // srcdoc, not src: the frame is sandboxed without an origin, so the SameSite cookie would
    // not go with its request; the document carries its own policy in a meta element.
    const reply = await fetch(m.html_url + (images ? "?images=show" : ""), { credentials: "same-origin" });
    frameNode.srcdoc = reply.ok ? await reply.text() : "";
    frameNode.hidden = false;
    text.textContent = "";
  } else {
    frameNode.hidden = true;
    frameNode.removeAttribute("srcdoc");
    text.textContent = m.text || "";
  }
  $("images-note").hidden = !(m.remote_images && !images);
  $("always-images").hidden = !m.from.length;
  $("edit-draft").hidden = !m.flags.includes("\\Draft");
  $("attachments").replaceChildren(...m.attachments.map((a) => {
    const li = el("li");
    li.append(el("a", `${a.filename} (${bytes(a.size)})`, { href: a.url, download: a.filename }));
    if (a.preview_url && a.content_type.startsWith("image/")) {
      li.append(el("img", null, { src: a.preview_url, alt: a.filename, class: "preview", loading: "lazy" }));
    } else if (a.preview_url) {
      const show = el("button", "Preview", { type: "button" });
      show.addEventListener("click", () => {
        show.replaceWith(el("iframe", null, { src: a.preview_url, title: `Preview of ${a.filename}`, class: "preview" }));
      });
      li.append(" ", show);
    }
    return li;
  }));
  $("zip-link").hidden = !m.zip_url;
  if (m.zip_url) $("zip-link").href = m.zip_url;
  $("flag-button").textContent = m.flags.includes("\\Flagged") ? "Unflag" : "Flag";
  // Timings for make bench: the body on screen (an HTML body once its frame has loaded).
  const shown = () => requestAnimationFrame(() => performance.mark("postroom:message-shown"));
  if (m.has_html) frameNode.addEventListener("load", shown, { once: true }); else shown();
  for (const li of $("messages").children) li.classList.toggle("current", Number(li.dataset.uid) === uid && box === state.folder.id);
  showThread(box, uid).catch(() => null);
  if (!m.flags.includes("\\Seen")) {
    await api("POST", `${base}/flags`, { add: ["\\Seen"] });
    m.flags.push("\\Seen");
    const item = loadedItems().find((x) => x.uid === uid);
    if (item && box === state.folder.id) { item.flags.push("\\Seen"); render(); }
    loadFolders().catch(() => null);
  }
}

async function showThread(box, uid) {
  const members = await api("GET", `${messagesUrl(box)}/${uid}/thread`);
  const list = $("thread");
  if (members.length < 2) { list.hidden = true; list.replaceChildren(); return; }
  list.replaceChildren(...members.map((t) => {
    const li = el("li");
    const current = t.mailbox_id === box && t.uid === uid;
    if (current) li.setAttribute("aria-current", "true");
    const link = el("a", `${shortDate(t.date || t.received)} · ${t.from || ""} · ${t.subject || "(no subject)"}${t.mailbox !== state.folder.name ? " (" + t.mailbox + ")" : ""}`, { href: `#message-${t.uid}` });
    link.addEventListener("click", (event) => { event.preventDefault(); act(() => openMessage(t.uid, false, t.mailbox_id)); });
    li.append(link);
    return li;
  }));
  list.setAttribute("aria-label", `Conversation, ${members.length} messages`);
  list.hidden = false;
}

// --- compose (compose.js) -------------------------------------------------------------------

function compose(mode) {
  if (mode !== "new" && !state.message) return;
  act(() => openCompose(mode, state.message, state.addresses));
}

// --- keyboard -----------------------------------------------------------------------------

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest("input, textarea, select, [contenteditable]") || document.querySelector("dialog[open]")) {
    if (event.key === "Escape" && target.id === "q") { target.value = ""; target.blur(); }
    return;
  }
  const m = state.message;
  const actions = {
    j: () => moveCursor(1),
    k: () => moveCursor(-1),
    o: () => { const item = itemAt(state.cursor); if (item) act(() => openMessage(item.uid)); },
    Enter: () => { const item = itemAt(state.cursor); if (item && !target.closest("a, button")) act(() => openMessage(item.uid)); else return false; },
    x: () => { const item = itemAt(state.cursor); if (item) toggleSelected(keyOf(item), !(state.all || state.selected.has(keyOf(item)))); },
    r: () => compose("reply"),
    a: () => compose("reply-all"),
    f: () => compose("forward"),
    e: () => act(archive),
    "#": () => act(() => deleteMessages(m ? { uids: [m.uid] } : selection())),
    "/": () => $("q").focus(),
    c: () => compose("new"),
    "?": () => $("shortcuts").showModal(),
    Escape: () => { if (state.message) closeReader(); },
  };
  const action = actions[event.key];
  if (action && action() !== false) event.preventDefault();
}

async function archive() {
  const target = special("\\Archive");
  if (!target) { status("There is no Archive folder."); return; }
  await moveTo(state.message ? { uids: [state.message.uid] } : selection(), target);
}

// --- wiring -------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => act(async () => {
  const page = document.querySelector(".mail").dataset;
  state.addresses = page.addresses ? page.addresses.split(",") : [];
  composer.sendDomains = page.sendDomains ? page.sendDomains.split(",") : [];
  state.conversations = page.conversations === "yes";
  // The INBOX's first page and the folder list are asked for together.
  if (page.inbox) state.folder = { id: Number(page.inbox), name: "INBOX", special_use: null, selectable: true };
  // Shortcuts work from the moment the list is drawn, even while the folders still load.
  document.addEventListener("keydown", onKey);
  await Promise.all([loadFolders(), state.folder ? resetList() : null]);
  $("list-scroll").addEventListener("scroll", render, { passive: true });
  addEventListener("resize", render);
  $("compose-button").addEventListener("click", () => compose("new"));
  $("reply-button").addEventListener("click", () => compose("reply"));
  $("reply-all-button").addEventListener("click", () => compose("reply-all"));
  $("forward-button").addEventListener("click", () => compose("forward"));
  composer.onSent = () => { loadFolders().catch(() => null); if (state.folder && ["\\Sent", "\\Drafts"].includes(state.folder.special_use)) resetList(true); };
  $("edit-draft").addEventListener("click", () => compose("draft"));
  $("always-images").addEventListener("click", () => act(async () => {
    await api("POST", "/api/v1/remote-images", { sender: state.message.from[0].address });
    status(`Images from ${state.message.from[0].address} will always be shown.`);
    await openMessage(state.message.uid, true, state.message.mailbox_id);
  }));
  $("show-images").addEventListener("click", () => act(() => openMessage(state.message.uid, true, state.message.mailbox_id)));
  $("back-button").addEventListener("click", closeReader);
  $("show-folders").addEventListener("click", () => view("folders"));
  $("folder-new").addEventListener("click", () => openFolderDialog("new"));
  $("folder-rename").addEventListener("click", () => openFolderDialog("rename"));
  $("folder-delete").addEventListener("click", () => act(deleteFolder));
  $("folder-form").addEventListener("submit", saveFolder);
  $("folder-cancel").addEventListener("click", () => $("folder-dialog").close());
  const messageBase = () => `${messagesUrl(state.message.mailbox_id)}/${state.message.uid}`;
  $("flag-button").addEventListener("click", () => act(async () => {
    const flagged = state.message.flags.includes("\\Flagged");
    await api("POST", `${messageBase()}/flags`, flagged ? { remove: ["\\Flagged"] } : { add: ["\\Flagged"] });
    await openMessage(state.message.uid, state.images, state.message.mailbox_id);
    await resetList(true);
  }));
  $("unread-button").addEventListener("click", () => act(async () => {
    await api("POST", `${messageBase()}/flags`, { remove: ["\\Seen"] });
    closeReader();
    await Promise.all([loadFolders(), resetList(true)]);
  }));
  $("archive-button").addEventListener("click", () => act(archive));
  $("delete-button").addEventListener("click", () => act(() => deleteMessages({ uids: [state.message.uid] })));
  $("move-button").addEventListener("click", () => act(() => {
    const folder = state.folders.find((f) => f.id === Number($("move-target").value));
    return moveTo({ uids: [state.message.uid] }, folder);
  }));
  $("select-all").addEventListener("change", (event) => {
    state.selected.clear();
    state.all = event.target.checked && state.total > 0;
    draw();
  });
  $("select-clear").addEventListener("click", clearSelection);
  $("conversations").checked = state.conversations;
  $("conversations").addEventListener("change", (event) => act(async () => {
    state.conversations = event.target.checked;
    await api("PUT", "/api/v1/preferences", { conversations: state.conversations });
    await resetList();
  }));
  $("bulk-read").addEventListener("click", () => act(() => bulkFlags({ add: ["\\Seen"] })));
  $("bulk-unread").addEventListener("click", () => act(() => bulkFlags({ remove: ["\\Seen"] })));
  $("bulk-flag").addEventListener("click", () => act(() => bulkFlags({ add: ["\\Flagged"] })));
  $("bulk-delete").addEventListener("click", () => act(() => deleteMessages(selection())));
  $("bulk-move").addEventListener("click", () => act(() => {
    const folder = state.folders.find((f) => f.id === Number($("bulk-target").value));
    return moveTo(selection(), folder);
  }));
  $("filter").addEventListener("change", (event) => { state.filter = event.target.value; act(() => resetList()); });
  $("sort").addEventListener("change", (event) => { state.sort = event.target.value; act(() => resetList()); });
  $("order").addEventListener("click", (event) => {
    state.descending = !state.descending;
    event.target.textContent = state.descending ? "↓" : "↑";
    event.target.setAttribute("aria-label", state.descending ? "Newest first" : "Oldest first");
    act(() => resetList());
  });
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    state.query = $("q").value.trim();
    $("list-title").textContent = state.query ? `Search: ${state.query}` : leaf(state.folder.name);
    act(() => resetList());
  });
  // New mail and other clients' changes without reload: the server names the folders.
  const events = new EventSource("/api/v1/events");
  events.addEventListener("ready", () => document.body.setAttribute("data-live", "yes"));
  // This session was logged out elsewhere, ended from another one, or revoked.
  events.addEventListener("ended", () => { events.close(); location.href = "/login?ended=1"; });
  events.addEventListener("change", (event) => act(async () => {
    const change = JSON.parse(event.data);
    await loadFolders();
    if (change.all || (state.folder && change.mailboxes.includes(state.folder.id))) await resetList(true);
  }));
}));
