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

  // The history stream: the browser reconnects by itself (after a restart
  // of watcherd, say) and sends the last event's id, so nothing is missed;
  // a reconnection also re-reads the page.
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
