// neurocortex web UI: the session warning and confirmations; everything else is htmx and plain forms.
(function () {
  "use strict";
  const body = document.body;

  // Confirm dangerous buttons (data-confirm="question"); an empty question asks nothing.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-confirm]");
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // The session ends after `lifetime` seconds without activity; warn `warning` seconds before.
  const lifetime = Number(body.dataset.sessionLifetime || 0);
  const warning = Number(body.dataset.sessionWarning || 0);
  if (!lifetime) return;
  const dialog = document.getElementById("session-warning");
  const remaining = document.getElementById("session-remaining");
  let endsAt = 0, warnTimer = 0, tick = 0;

  function signOutPage() {
    window.location.assign("/ui/login?expired&next=" + encodeURIComponent(location.pathname + location.search));
  }
  function showRemaining() {
    const seconds = Math.max(0, Math.round((endsAt - Date.now()) / 1000));
    remaining.textContent = seconds >= 120 ? Math.round(seconds / 60) + " minutes" : seconds + " seconds";
    if (seconds <= 0) signOutPage();
  }
  function restart() {
    endsAt = Date.now() + lifetime * 1000;
    clearTimeout(warnTimer); clearInterval(tick);
    if (dialog.open) dialog.close();
    warnTimer = setTimeout(function () {
      showRemaining();
      dialog.showModal();
      tick = setInterval(showRemaining, 1000);
    }, Math.max(0, lifetime - warning) * 1000);
  }
  document.getElementById("session-stay").addEventListener("click", function () {
    fetch("/ui/session", { credentials: "same-origin" }).then(function (answer) {
      if (answer.ok) restart(); else signOutPage();
    });
  });
  document.getElementById("session-leave").addEventListener("click", function () {
    document.querySelector("form[action='/ui/logout']").submit();
  });
  // A request the user made renews the session on the server: follow it here (polling does not).
  document.addEventListener("htmx:afterRequest", function (event) {
    const headers = event.detail.requestConfig && event.detail.requestConfig.headers;
    if (!headers || !headers["X-Neurocortex-Background"]) restart();
  });
  restart();
})();
