"use strict";
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    await api("POST", "/api/v1/session", { address: form.address.value, password: form.password.value });
    location.href = "/";
  } catch (e) {
    error.textContent = e.message;
  }
});
