"use strict";
// Settings: filters and out-of-office (kept as a Sieve script by /api/v1/sieve), identities,
// contacts, senders whose images are shown, the password. One section per #fragment.
const $ = (id) => document.getElementById(id);
const SECTIONS = ["filters", "vacation", "identities", "contacts", "privacy", "security", "password"];

async function act(fn) {
  try { await fn(); } catch (e) { status(e.message); }
}

function select(options, value, label) {
  const node = el("select", null, { "aria-label": label });
  for (const [v, text] of options) node.append(el("option", text, { value: v }));
  node.value = value;
  return node;
}

function input(value, label, attrs) {
  const node = el("input", null, { type: "text", "aria-label": label, ...(attrs || {}) });
  node.value = value || "";
  return node;
}

// --- filters ------------------------------------------------------------------------------

const FIELDS = [["from", "From"], ["to", "To or Cc"], ["subject", "Subject"], ["header", "Header…"], ["size_over", "Size over (bytes)"]];
const OPS = [["contains", "contains"], ["not_contains", "does not contain"], ["is", "is"], ["not_is", "is not"], ["matches", "matches (* ?)"]];
const ACTIONS = [["fileinto", "Move to folder"], ["copy_to", "Copy to folder"], ["mark_read", "Mark as read"], ["flag", "Flag"],
  ["redirect", "Redirect to"], ["forward_copy", "Forward a copy to"], ["discard", "Delete"], ["stop", "Stop here"]];
const NEEDS_VALUE = new Set(["fileinto", "copy_to", "redirect", "forward_copy"]);

function conditionRow(c) {
  const row = el("div", null, { class: "row condition" });
  const field = select(FIELDS, c.field, "Field");
  const header = input(c.header, "Header name", { class: "header-name", size: 12 });
  const op = select(OPS, c.op, "Comparison");
  const value = input(c.value, "Value");
  header.hidden = c.field !== "header";
  field.addEventListener("change", () => { header.hidden = field.value !== "header"; });
  const remove = el("button", "Remove", { type: "button", "aria-label": "Remove this condition" });
  remove.addEventListener("click", () => row.remove());
  row.append(field, header, op, value, remove);
  return row;
}

function actionRow(a) {
  const row = el("div", null, { class: "row action" });
  const type = select(ACTIONS, a.type, "Action");
  const value = input(a.value, "Folder or address");
  value.hidden = !NEEDS_VALUE.has(a.type);
  type.addEventListener("change", () => { value.hidden = !NEEDS_VALUE.has(type.value); });
  const remove = el("button", "Remove", { type: "button", "aria-label": "Remove this action" });
  remove.addEventListener("click", () => row.remove());
  row.append(type, value, remove);
  return row;
}

function ruleBox(rule, n) {
  const box = el("fieldset", null, { class: "rule" });
  box.append(el("legend", `Rule ${n}`));
  const head = el("div", null, { class: "row" });
  const name = input(rule.name, "Rule name", { placeholder: "Name (optional)", class: "rule-name" });
  const enabled = el("input", null, { type: "checkbox", class: "rule-enabled" });
  enabled.checked = rule.enabled !== false;
  const enabledLabel = el("label", null, { class: "check" });
  enabledLabel.append(enabled, " on");
  const match = select([["all", "when all of these match"], ["any", "when any of these matches"]], rule.match || "all", "Match");
  match.classList.add("rule-match");
  const remove = el("button", "Delete rule", { type: "button", class: "danger" });
  remove.addEventListener("click", () => box.remove());
  head.append(name, enabledLabel, match, remove);
  const conditions = el("div", null, { class: "conditions" });
  for (const c of rule.conditions.length ? rule.conditions : [{ field: "from", op: "contains", value: "", header: "" }]) conditions.append(conditionRow(c));
  const addCondition = el("button", "Add condition", { type: "button" });
  addCondition.addEventListener("click", () => conditions.append(conditionRow({ field: "subject", op: "contains", value: "", header: "" })));
  const actions = el("div", null, { class: "actions" });
  for (const a of rule.actions) actions.append(actionRow(a));
  const addAction = el("button", "Add action", { type: "button" });
  addAction.addEventListener("click", () => actions.append(actionRow({ type: "fileinto", value: "" })));
  box.append(head, el("p", "Conditions", { class: "muted" }), conditions, addCondition, el("p", "Then", { class: "muted" }), actions, addAction);
  return box;
}

function readRules() {
  return [...document.querySelectorAll("#rules fieldset.rule")].map((box) => ({
    name: box.querySelector(".rule-name").value.trim(),
    enabled: box.querySelector(".rule-enabled").checked,
    match: box.querySelector(".rule-match").value,
    conditions: [...box.querySelectorAll(".condition")].map((row) => {
      const [field, op] = row.querySelectorAll("select");
      const [header, value] = row.querySelectorAll("input");
      return { field: field.value, op: op.value, value: value.value, header: field.value === "header" ? header.value.trim() : "" };
    }),
    actions: [...box.querySelectorAll(".action")].map((row) => {
      const type = row.querySelector("select").value;
      return { type, value: NEEDS_VALUE.has(type) ? row.querySelector("input").value.trim() : "" };
    }),
  }));
}

function showRules(data) {
  $("rules").replaceChildren(...data.rules.map((r, i) => ruleBox(r, i + 1)));
  $("rules-script").textContent = data.script;
  $("filters-other").hidden = !data.other_active;
  if (data.other_active) $("filters-other").textContent = `The script “${data.other_active}” runs instead of these filters; saving them makes them the active script.`;
}

async function loadFilters() { showRules(await api("GET", "/api/v1/sieve/rules")); }

// --- out of office ------------------------------------------------------------------------

async function loadVacation() {
  const v = await api("GET", "/api/v1/sieve/vacation");
  const f = $("vacation-form");
  f.enabled.checked = v.enabled;
  f.start.value = v.start || "";
  f.end.value = v.end || "";
  f.subject.value = v.subject;
  f.text.value = v.text;
  f.days.value = v.days;
}

// --- identities, contacts, image senders ------------------------------------------------------

async function loadIdentities() {
  const list = await api("GET", "/api/v1/identities");
  $("identity-forms").replaceChildren(...list.map((identity) => {
    const form = el("form", null, { class: "stack", "data-address": identity.address });
    form.append(el("h3", identity.address));
    const name = el("label", "Name ");
    const nameInput = el("input", null, { name: "name", maxlength: "200" });
    nameInput.value = identity.name || "";
    name.append(nameInput);
    const sig = el("label", "Signature ");
    const sigInput = el("textarea", null, { name: "signature", rows: "4", maxlength: "10000" });
    sigInput.value = identity.signature || "";
    sig.append(sigInput);
    const save = el("button", "Save", { type: "submit", class: "primary" });
    form.append(name, sig, save);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(async () => {
        await api("PUT", `/api/v1/identities/${encodeURIComponent(identity.address)}`, { name: nameInput.value || null, signature: sigInput.value || null });
        status(`Identity ${identity.address} saved.`);
      });
    });
    return form;
  }));
}

async function loadContacts() {
  const list = await api("GET", "/api/v1/contacts?limit=1000");
  $("contact-rows").replaceChildren(...list.map((c) => {
    const row = el("tr", null, { "data-address": c.address });
    const remove = el("button", "Remove", { type: "button", class: "danger", "aria-label": `Remove ${c.address}` });
    remove.addEventListener("click", () => act(async () => {
      await api("DELETE", `/api/v1/contacts/${c.id}`);
      status(`${c.address} removed.`);
      await loadContacts();
    }));
    const edit = el("button", "Edit", { type: "button", "aria-label": `Edit ${c.address}` });
    edit.addEventListener("click", () => { const f = $("contact-form"); f.address.value = c.address; f.name.value = c.name || ""; f.name.focus(); });
    const actions = el("td");
    actions.append(edit, remove);
    row.append(el("td", c.name || ""), el("td", c.address), el("td", c.uses), actions);
    return row;
  }));
}

async function loadImageSenders() {
  const list = await api("GET", "/api/v1/remote-images");
  $("image-senders").replaceChildren(...list.map((sender) => {
    const li = el("li", `${sender} `);
    const remove = el("button", "Stop showing", { type: "button", "aria-label": `Stop showing images from ${sender}` });
    remove.addEventListener("click", () => act(async () => {
      await api("DELETE", `/api/v1/remote-images?${new URLSearchParams({ sender })}`);
      status(`Images from ${sender} are blocked again.`);
      await loadImageSenders();
    }));
    li.append(remove);
    return li;
  }));
  if (!list.length) $("image-senders").append(el("li", "None: every message asks first.", { class: "muted" }));
}

// --- security: two-factor login, app passwords, sessions ------------------------------------

async function loadSecurity() {
  const [totp, passwords, sessions] = await Promise.all([
    api("GET", "/api/v1/account/two-factor"), api("GET", "/api/v1/account/app-passwords"), api("GET", "/api/v1/tokens"),
  ]);
  $("totp-state").textContent = totp.enabled
    ? `Two-factor login is on: the web asks for a code from your app. ${totp.recovery_codes_left} recovery codes left.`
    : "Two-factor login is off.";
  $("totp-start-button").hidden = totp.enabled;
  $("totp-disable").hidden = !totp.enabled;
  $("app-password-rows").replaceChildren(...passwords.map((p) => {
    const row = el("tr", null, { "data-id": p.id });
    const revoke = el("button", "Revoke", { type: "button", class: "danger", "aria-label": `Revoke ${p.name}` });
    revoke.addEventListener("click", () => act(async () => {
      await api("DELETE", `/api/v1/account/app-passwords/${p.id}`);
      status(`App password ${p.name} revoked.`);
      await loadSecurity();
    }));
    const actions = el("td");
    actions.append(revoke);
    row.append(el("td", p.name), el("td", when(p.created_at)),
      el("td", p.last_used_at ? `${when(p.last_used_at)}${p.last_used_from ? " from " + p.last_used_from : ""}` : "never"), actions);
    return row;
  }));
  $("session-rows").replaceChildren(...sessions.map((s) => {
    const row = el("tr", null, { "data-id": s.id });
    const actions = el("td");
    if (s.current) actions.append(el("span", "this one", { class: "muted" }));
    else {
      const end = el("button", "End", { type: "button", class: "danger", "aria-label": `End session ${s.id}` });
      end.addEventListener("click", () => act(async () => {
        await api("DELETE", `/api/v1/tokens/${s.id}`);
        status("Session ended.");
        await loadSecurity();
      }));
      actions.append(end);
    }
    row.append(el("td", s.kind === "cookie" ? "browser" : "token"), el("td", when(s.created_at)), el("td", s.client_address || ""), el("td", when(s.expires_at)), actions);
    return row;
  }));
}

// --- wiring -------------------------------------------------------------------------------

const LOADERS = { filters: loadFilters, vacation: loadVacation, identities: loadIdentities, contacts: loadContacts, privacy: loadImageSenders, security: loadSecurity, password: async () => {} };
// A section is shown only once its loader has filled it: a rule added or a field typed before
// the load finished would otherwise be overwritten by it. Only the latest route shows its section.
let routing = 0;
async function route() {
  const name = SECTIONS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "filters";
  const token = ++routing;
  for (const s of SECTIONS) $(s).hidden = true;
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.getAttribute("href") === `#${name}`) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  await act(LOADERS[name]);
  if (token === routing) $(name).hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  addEventListener("hashchange", route);
  $("rule-add").addEventListener("click", () => {
    const n = document.querySelectorAll("#rules fieldset.rule").length + 1;
    const box = ruleBox({ name: "", enabled: true, match: "all", conditions: [], actions: [{ type: "fileinto", value: "" }] }, n);
    $("rules").append(box);
    box.querySelector("input[type=text]").focus();
  });
  $("rules-save").addEventListener("click", () => act(async () => {
    showRules(await api("PUT", "/api/v1/sieve/rules", { rules: readRules() }));
    status("Filters saved.");
  }));
  $("vacation-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const f = event.target;
    act(async () => {
      await api("PUT", "/api/v1/sieve/vacation", {
        enabled: f.enabled.checked, start: f.start.value || null, end: f.end.value || null,
        subject: f.subject.value, text: f.text.value, days: Number(f.days.value) || 7,
      });
      status(f.enabled.checked ? "Out-of-office reply on." : "Out-of-office reply saved (off).");
    });
  });
  $("contact-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const f = event.target;
    act(async () => {
      const c = await api("POST", "/api/v1/contacts", { address: f.address.value.trim(), name: f.name.value.trim() || null });
      f.reset();
      status(`Contact ${c.address} saved.`);
      await loadContacts();
    });
  });
  $("password-change").addEventListener("submit", (event) => {
    event.preventDefault();
    const f = event.target;
    act(async () => {
      await api("POST", "/api/v1/account/password", { current_password: f.current_password.value, new_password: f.new_password.value });
      location.href = "/login";
    });
  });
  $("totp-start").addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const setup = await api("POST", "/api/v1/account/two-factor/setup", { password: event.target.password.value });
      event.target.reset();
      $("totp-secret").textContent = setup.secret;
      // Drawn by the server (an SVG in an <img>: shown, never run).
      $("totp-qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(setup.qr_svg);
      $("totp-uri").href = setup.uri;
      $("totp-confirm").hidden = false;
      $("totp-confirm").code.focus();
    });
  });
  $("totp-confirm").addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const result = await api("POST", "/api/v1/account/two-factor/confirm", { code: event.target.code.value });
      event.target.reset();
      $("totp-confirm").hidden = true;
      $("recovery-codes").replaceChildren(...result.recovery_codes.map((c) => el("li", null).appendChild(el("code", c)).parentNode));
      $("recovery").hidden = false;
      status("Two-factor login is on.");
      await loadSecurity();
    });
  });
  $("totp-disable").addEventListener("click", () => act(async () => {
    await api("POST", "/api/v1/account/two-factor/disable", { password: $("totp-start").password.value });
    $("totp-start").reset();
    $("recovery").hidden = true;
    status("Two-factor login is off.");
    await loadSecurity();
  }));
  $("app-password-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const created = await api("POST", "/api/v1/account/app-passwords", { name: event.target.name.value.trim() });
      event.target.reset();
      const note = $("app-password-new");
      note.replaceChildren(el("span", `App password for ${created.name}: `), el("code", created.password, { id: "app-password-secret" }),
        el("span", " — type it into that program now; it is not shown again."));
      note.hidden = false;
      await loadSecurity();
    });
  });
  route();
});
