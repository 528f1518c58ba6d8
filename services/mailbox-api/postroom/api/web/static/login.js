"use strict";
// Log in; when the account has two-factor login on, ask for the app's code as well.
if (new URLSearchParams(location.search).has("ended")) {
  document.getElementById("login-error").textContent = "Your session was ended. Log in again.";
}
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("login-error");
  const otpField = document.getElementById("otp-field");
  error.textContent = "";
  const body = { address: form.address.value, password: form.password.value };
  if (!otpField.hidden && form.otp.value) body.otp = form.otp.value;
  const reply = await fetch("/api/v1/session", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (reply.ok) { location.href = "/"; return; }
  let detail = reply.statusText;
  try { detail = (await reply.json()).detail || detail; } catch (e) { /* not JSON */ }
  if (reply.headers.get("X-Postroom-OTP") === "required") {
    const first = otpField.hidden;
    otpField.hidden = false;
    form.otp.focus();
    if (first) return;  // the question, not an error: the code is asked for the first time
  }
  error.textContent = typeof detail === "string" ? detail : "log in failed";
});
