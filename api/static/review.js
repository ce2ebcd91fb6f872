// The review page's one script: keep the admin token for this tab, enable the decision
// buttons when there is one, and post decisions. Without a token the page is read-only.
(function () {
  "use strict";
  var KEY = "recommender-admin-token";
  function token() { return sessionStorage.getItem(KEY) || ""; }
  function say(text) { document.getElementById("status").textContent = text; }
  function refresh() {
    var on = token() !== "";
    document.getElementById("mode").textContent = on ? "actions enabled" : "read-only";
    document.querySelectorAll("button.decide").forEach(function (b) { b.disabled = !on; });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("token-form");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var value = document.getElementById("token").value.trim();
      if (value) { sessionStorage.setItem(KEY, value); }
      document.getElementById("token").value = "";
      refresh();
    });
    document.getElementById("forget-token").addEventListener("click", function () {
      sessionStorage.removeItem(KEY);
      refresh();
    });
    document.querySelectorAll("button.decide").forEach(function (button) {
      button.addEventListener("click", function () {
        var ref = document.getElementById("article").dataset.ref;
        var body = {action: button.dataset.action, target: button.dataset.target};
        say(body.action + ": sending…");
        fetch("/v1/articles/" + ref + "/decisions", {
          method: "POST",
          headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token()},
          body: JSON.stringify(body)
        }).then(function (response) {
          return response.json().then(function (data) {
            if (!response.ok) {
              say(body.action + " failed: " + ((data.error && data.error.message) || response.status));
              return;
            }
            say(body.action + " recorded for " + body.target);
            window.location.reload();
          });
        }).catch(function (error) { say(body.action + " failed: " + error); });
      });
    });
    refresh();
  });
})();
