"use strict";
// The compose window: plain or rich text, reply/forward quoting, identities and signatures,
// recipient autocomplete, attachments dropped in with an upload progress bar, drafts saved
// to the Drafts folder as you type (attachments included: each file is uploaded once, with
// the next save, and carried from save to save and to the send on the server), and a few
// seconds to undo a send.
const UNDO_MS = 5000;
const AUTOSAVE_MS = 3000;
const SIGNATURE_MARK = "\n-- \n";  // RFC 3676 §4.3: the signature separator line

const composer = {
  // files: chosen but not yet saved with a draft; kept: attachments of the saved draft
  // ({part, filename, size}), which the next save or the send keeps by part number.
  files: [], kept: [], identities: new Map(), draftTimer: 0, saving: null, dirty: false,
  signature: "", onSent: () => {},
  // Domains of the account's *@domain send-as entries: any address there may be typed.
  sendDomains: [],
};
const c$ = (id) => document.getElementById(id);
const form = () => c$("compose-form");
const rich = () => c$("rich-toggle").checked;

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[ch]));
}

function people(list) { return list.map((a) => (a.name ? `${a.name} <${a.address}>` : a.address)).join(", "); }

async function loadIdentities() {
  const list = await api("GET", "/api/v1/identities");
  composer.identities = new Map(list.map((i) => [i.address, i]));
  return list;
}

function signatureOf(address) {
  const identity = composer.identities.get(address);
  return identity && identity.signature ? SIGNATURE_MARK + identity.signature : "";
}

function setBody(text) {
  form().text.value = text;
  c$("compose-rich").innerHTML = text ? escapeHtml(text).replace(/\n/g, "<br>") : "";
}

function bodyText() {
  return rich() ? c$("compose-rich").innerText : form().text.value;
}

// The From address: the one chosen, or the one typed for a "*@domain" choice.
function sender() {
  const f = form();
  return f.from.value.startsWith("*@") ? f.from_other.value.trim() : f.from.value;
}

function showOther() {
  const f = form();
  const domain = f.from.value.startsWith("*@") ? f.from.value.slice(2) : "";
  c$("from-other-field").hidden = !domain;
  f.from_other.required = Boolean(domain);
  f.from_other.placeholder = domain ? `name@${domain}` : "";
}

// Choose this address in the picker if the account may send as it; false if not.
function chooseSender(address, addresses) {
  const f = form();
  if (!address) return false;
  if (addresses.includes(address)) f.from.value = address;
  else if (composer.sendDomains.includes(address.split("@").pop())) {
    f.from.value = `*@${address.split("@").pop()}`;
    f.from_other.value = address;
  } else return false;
  showOther();
  return true;
}

function swapSignature() {
  showOther();
  const wanted = signatureOf(sender());
  const text = form().text.value;
  const stripped = composer.signature && text.endsWith(composer.signature) ? text.slice(0, -composer.signature.length) : text;
  composer.signature = wanted;
  if (!rich()) form().text.value = stripped + wanted;
}

async function openCompose(mode, m, addresses) {
  const f = form();
  f.reset();
  clearTimeout(composer.draftTimer);
  composer.files = [];
  composer.kept = mode === "draft" ? m.attachments.map((a) => ({ part: a.part, filename: a.filename, size: a.size })) : [];
  composer.dirty = false;
  composer.signature = "";
  c$("compose-rich").hidden = true;
  f.text.hidden = false;
  c$("format-buttons").hidden = true;
  c$("draft-state").textContent = "";
  c$("compose-error").textContent = "";
  if (!composer.identities.size) await loadIdentities().catch(() => null);
  f.from.replaceChildren(...addresses.map((a) => {
    const identity = composer.identities.get(a);
    return el("option", identity && identity.name ? `${identity.name} <${a}>` : a, { value: a });
  }), ...composer.sendDomains.map((d) => el("option", `Another address at ${d}…`, { value: `*@${d}` })));
  showOther();
  f.mode.value = mode === "reply-all" ? "reply" : mode === "draft" ? "new" : mode;
  c$("compose-title").textContent = { new: "New message", reply: "Reply", "reply-all": "Reply all", forward: "Forward", draft: "Draft" }[mode];
  let body = "";
  if (mode === "draft") {
    f.draft_uid.value = m.uid;
    f.to.value = people(m.to);
    f.cc.value = people(m.cc);
    f.subject.value = m.subject || "";
    chooseSender(m.from[0] && m.from[0].address.toLowerCase(), addresses);
    body = m.text || "";
  } else if (mode !== "new") {
    f.reply_to_mailbox_id.value = m.mailbox_id;
    f.reply_to_uid.value = m.uid;
    const subject = m.subject || "";
    const mine = new Set(addresses);
    // Reply from the address it was sent to, when the account may send as it.
    m.to.concat(m.cc).some((a) => chooseSender(a.address.toLowerCase(), addresses));
    if (mode === "reply" || mode === "reply-all") {
      const to = m.reply_to.length ? m.reply_to : m.from;
      f.to.value = people(to);
      if (mode === "reply-all") {
        const seen = new Set(to.map((a) => a.address.toLowerCase()));
        f.cc.value = people(m.to.concat(m.cc).filter((a) => !mine.has(a.address.toLowerCase()) && !seen.has(a.address.toLowerCase())));
      }
      f.subject.value = /^re:/i.test(subject) ? subject : `Re: ${subject}`;
      body = `\n\nOn ${when(m.date || m.received)}, ${people(m.from)} wrote:\n` + (m.text || "").split("\n").map((l) => "> " + l).join("\n");
    } else {
      f.subject.value = /^fwd?:/i.test(subject) ? subject : `Fwd: ${subject}`;
      body = `\n\n---------- Forwarded message ----------\nFrom: ${people(m.from)}\nDate: ${when(m.date || m.received)}\nSubject: ${subject}\nTo: ${people(m.to)}\n\n${m.text || ""}`;
    }
  }
  setBody(body);
  renderFiles();
  if (mode !== "draft") swapSignature();
  c$("discard").hidden = !f.draft_uid.value;
  c$("compose").showModal();
  (mode === "new" || mode === "forward" ? f.to : f.text).focus();
  if (mode === "reply" || mode === "reply-all") f.text.setSelectionRange(0, 0);
}

function toggleRich() {
  const f = form();
  if (rich()) {
    c$("compose-rich").innerHTML = escapeHtml(f.text.value).replace(/\n/g, "<br>");
    c$("compose-rich").hidden = false;
    f.text.hidden = true;
    c$("format-buttons").hidden = false;
    c$("compose-rich").focus();
  } else {
    f.text.value = c$("compose-rich").innerText;
    c$("compose-rich").hidden = true;
    f.text.hidden = false;
    c$("format-buttons").hidden = true;
  }
  changed();
}

function format(event) {
  const button = event.target.closest("button[data-command]");
  if (!button) return;
  const command = button.dataset.command;
  let value = button.dataset.value || null;
  if (command === "createLink") {
    value = prompt("Link address (https://…)");
    if (!value || !/^(https?:|mailto:)/i.test(value)) return;
  }
  if (document.activeElement !== c$("compose-rich")) c$("compose-rich").focus();
  // execCommand is what contenteditable offers for these edits; the server cleans the
  // result with nh3 whatever it holds.
  document.execCommand(command, false, value);
  changed();
}

// --- recipients: autocomplete from contacts -----------------------------------------------

let suggestTimer = 0;
function suggest(event) {
  const input = event.target;
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(async () => {
    const value = input.value;
    const cut = value.lastIndexOf(",");
    const head = cut >= 0 ? value.slice(0, cut + 1) + " " : "";
    const prefix = value.slice(cut + 1).trim();
    if (prefix.length < 1) return;
    const found = await api("GET", `/api/v1/contacts?${new URLSearchParams({ q: prefix, limit: 8 })}`).catch(() => []);
    // A datalist completes the whole field: each option is the field with the last
    // address completed.
    c$("contacts-list").replaceChildren(...found.map((c) => el("option", c.name ? `${c.name} <${c.address}>` : c.address,
      { value: head + (c.name ? `${c.name} <${c.address}>` : c.address) })));
  }, 150);
}

// --- attachments --------------------------------------------------------------------------

function addFiles(list) {
  for (const file of list) composer.files.push(file);
  renderFiles();
  changed();
}

function renderFiles() {
  const item = (name, size, list, i) => {
    const li = el("li");
    const remove = el("button", "Remove", { type: "button", "aria-label": `Remove ${name}` });
    remove.addEventListener("click", () => { list.splice(i, 1); renderFiles(); changed(); });
    li.append(el("span", `${name} (${bytes(size)})`), remove);
    return li;
  };
  c$("compose-attachments").replaceChildren(
    ...composer.kept.map((a, i) => item(a.filename, a.size, composer.kept, i)),
    ...composer.files.map((file, i) => item(file.name, file.size, composer.files, i)));
}

// --- drafts -------------------------------------------------------------------------------

function fields() {
  const f = form();
  const data = new FormData();
  data.set("from", sender());
  for (const name of ["to", "cc", "bcc", "subject"]) data.set(name, f[name].value);
  for (const a of composer.kept) data.append("keep", a.part);
  if (rich()) {
    data.set("html", c$("compose-rich").innerHTML);
    data.set("text", "");
  } else {
    data.set("text", f.text.value);
  }
  return data;
}

function changed() {
  composer.dirty = true;
  clearTimeout(composer.draftTimer);
  composer.draftTimer = setTimeout(() => saveDraft().catch((e) => { c$("draft-state").textContent = `Draft not saved: ${e.message}`; }), AUTOSAVE_MS);
}

async function saveDraft() {
  if (!composer.dirty) return;
  if (composer.saving) await composer.saving;
  composer.dirty = false;
  const data = fields();
  const previous = form().draft_uid.value;
  if (previous) data.set("replace_uid", previous);
  const files = composer.files.slice();
  for (const file of files) data.append("attachments", file, file.name);
  composer.saving = files.length ? upload("/api/v1/drafts", data, true) : api("POST", "/api/v1/drafts", data);
  try {
    const saved = await composer.saving;
    form().draft_uid.value = saved.uid;
    // What was uploaded is now part of the draft.
    composer.files = composer.files.filter((file) => !files.includes(file));
    composer.kept = saved.attachments.map((a) => ({ part: a.part, filename: a.filename, size: a.size }));
    renderFiles();
    c$("discard").hidden = false;
    c$("draft-state").textContent = `Draft saved at ${new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })}.`;
  } finally {
    composer.saving = null;
  }
}

async function closeCompose() {
  clearTimeout(composer.draftTimer);
  c$("compose").close();
  if (composer.dirty) {
    await saveDraft().catch(() => null);
    status("Draft saved in Drafts.");
  }
}

async function discardDraft() {
  clearTimeout(composer.draftTimer);
  composer.dirty = false;
  if (composer.saving) await composer.saving.catch(() => null);
  const uid = form().draft_uid.value;
  c$("compose").close();
  if (uid) await api("DELETE", `/api/v1/drafts/${uid}`);
  status("Draft discarded.");
}

// --- sending, after a moment in which it can be undone --------------------------------------

function upload(path, data, progress) {
  // XMLHttpRequest, not fetch: only it reports upload progress.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const bar = c$("upload-progress");
    xhr.open("POST", path);
    xhr.setRequestHeader("X-CSRF-Token", CSRF);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; });
    xhr.addEventListener("load", () => {
      bar.hidden = true;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new Error((body && typeof body.detail === "string" && body.detail) || xhr.statusText || "sending failed"));
    });
    xhr.addEventListener("error", () => { bar.hidden = true; reject(new Error("the server could not be reached")); });
    bar.value = 0;
    bar.hidden = !progress;
    xhr.send(data);
  });
}

async function send(event) {
  event.preventDefault();
  const f = form();
  clearTimeout(composer.draftTimer);
  if (composer.saving) await composer.saving.catch(() => null);
  if (composer.files.length) {
    // New files go up first, with the draft (their progress shows in the window); the send
    // then carries them over from the draft, so it can still be undone.
    composer.dirty = true;
    try {
      await saveDraft();
    } catch (e) {
      c$("compose-error").textContent = e.message;
      return;
    }
  }
  const data = fields();
  for (const name of ["mode", "reply_to_mailbox_id", "reply_to_uid", "draft_uid"]) if (f[name].value) data.set(name, f[name].value);
  if (data.get("mode") === "new") { data.delete("reply_to_mailbox_id"); data.delete("reply_to_uid"); }
  c$("compose").close();
  let undone = false;
  const timer = setTimeout(async () => {
    if (undone) return;
    try {
      await upload("/api/v1/send", data, false);
      status("Message sent.");
      composer.onSent();
    } catch (e) {
      c$("compose").showModal();
      c$("compose-error").textContent = e.message;
    }
  }, UNDO_MS);
  status("Sending…", { label: "Undo", ms: UNDO_MS, run: () => { undone = true; clearTimeout(timer); c$("compose").showModal(); status("Sending undone."); } });
}

document.addEventListener("DOMContentLoaded", () => {
  const f = form();
  f.addEventListener("submit", send);
  f.addEventListener("input", (event) => { if (event.target.type !== "file") changed(); });
  c$("compose-rich").addEventListener("input", changed);
  f.from.addEventListener("change", swapSignature);
  c$("rich-toggle").addEventListener("change", toggleRich);
  c$("format-buttons").addEventListener("click", format);
  // Pressing a format button must not take the caret (and the selection) out of the text.
  c$("format-buttons").addEventListener("mousedown", (event) => event.preventDefault());
  for (const name of ["to", "cc", "bcc"]) f[name].addEventListener("input", suggest);
  c$("compose-files").addEventListener("change", (event) => { addFiles(event.target.files); event.target.value = ""; });
  const zone = c$("drop-zone");
  // Files may be dropped anywhere on the window; the zone shows where they go.
  const windowNode = c$("compose");
  windowNode.addEventListener("dragover", (event) => { if (event.dataTransfer.types.includes("Files")) { event.preventDefault(); zone.classList.add("over"); } });
  windowNode.addEventListener("dragleave", () => zone.classList.remove("over"));
  windowNode.addEventListener("drop", (event) => { if (event.dataTransfer.files.length) { event.preventDefault(); zone.classList.remove("over"); addFiles(event.dataTransfer.files); } });
  c$("cancel").addEventListener("click", () => closeCompose());
  c$("compose").addEventListener("cancel", (event) => { event.preventDefault(); closeCompose(); });
  c$("discard").addEventListener("click", () => discardDraft().catch((e) => status(e.message)));
});
