// The dashboard's only script: live updates from the history stream, and
// the buttons, which call the v1 API under /dashboard/v1 after a
// confirmation. No framework, nothing loaded from elsewhere.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const main = document.getElementById("main");
  const live = document.getElementById("live");
  const error = document.getElementById("error");

  // Re-read the page's main part; changes that come in a burst share one read.
  let pending = null;
  function refresh() {
    if (pending) return;
    pending = setTimeout(async function () {
      pending = null;
      const url = new URL(location.href);
      url.searchParams.set("part", "main");
      try {
        const r = await fetch(url, { credentials: "same-origin" });
        if (r.ok) main.innerHTML = await r.text();
      } catch (e) {
        live.textContent = "offline, retrying...";
      }
    }, 30);
  }

  function say(message) {
    error.textContent = message;
    error.hidden = !message;
  }

  async function act(button) {
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    say("");
    button.disabled = true;
    try {
      const r = await fetch(button.dataset.url, {
        method: button.dataset.method,
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "OpenStack-API-Version": "infra-optim 1.7",
          "X-CSRF-Token": csrf,
        },
        body: button.dataset.body || undefined,
      });
      if (!r.ok) {
        let message = r.status + " " + r.statusText;
        try {
          const body = await r.json();
          message = JSON.parse(body.error_message).faultstring || message;
        } catch (e) { /* not a Watcher error body */ }
        say(message);
      }
      if (r.ok && (button.dataset.then || button.dataset.method === "DELETE")) {
        location.href = button.dataset.then || "/dashboard";
        return;
      }
    } catch (e) {
      say("watcherd did not answer: " + e);
    } finally {
      button.disabled = false;
    }
    refresh();
  }

  document.addEventListener("click", function (e) {
    const button = e.target.closest("button[data-url]");
    if (button) act(button);
  });

  // The audit form: its fields become the API's body, typed as the
  // strategy's parameters_spec says; the API's answer is shown as it is.
  document.addEventListener("submit", async function (e) {
    const form = e.target.closest("form[data-api]");
    if (!form) return;
    e.preventDefault();
    say("");
    const field = (n) => form.elements[n] && form.elements[n].value.trim();
    const body = { audit_type: field("audit_type"), goal: form.dataset.goal,
                   strategy: form.dataset.strategy, parameters: {} };
    if (field("name")) body.name = field("name");
    if (field("interval")) body.interval = field("interval");
    try {
      for (const input of form.querySelectorAll("[data-param]")) {
        const name = input.dataset.param;
        if (input.dataset.type === "boolean") body.parameters[name] = input.checked;
        else if (input.value.trim() === "") continue;
        else if (input.dataset.type === "number") body.parameters[name] = Number(input.value);
        else if (input.dataset.type === "json") body.parameters[name] = JSON.parse(input.value);
        else body.parameters[name] = input.value;
      }
    } catch (err) {
      say("A parameter is not valid JSON: " + err.message);
      return;
    }
    const r = await fetch(form.dataset.api, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "OpenStack-API-Version": "infra-optim 1.7",
                 "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    let answer = {};
    try { answer = await r.json(); } catch (err) { /* no body */ }
    if (r.ok) {
      location.href = "/dashboard/audits/" + answer.uuid;
      return;
    }
    let message = r.status + " " + r.statusText;
    try { message = JSON.parse(answer.error_message).faultstring || message; } catch (err) { /* keep */ }
    say(message);
  });

  // The history stream: the browser reconnects by itself (after a restart
  // of watcherd, say) and sends the last event's id, so nothing is missed;
  // a reconnection also re-reads the page. A form page follows nothing.
  if (!document.body.dataset.events) {
    live.textContent = "";
    return;
  }
  const events = new EventSource(document.body.dataset.events);
  events.addEventListener("history", refresh);
  events.addEventListener("open", function () {
    live.textContent = "live";
    refresh();
  });
  events.addEventListener("error", function () {
    live.textContent = "reconnecting...";
  });
})();
