/* The gateway user bar: include with <script src="/_gateway/bar.js"></script>.
   Fetches /api/whoami (same origin, with cookies) and shows who is signed in. */
(function () {
  "use strict";
  function show(data) {
    var bar = document.getElementById("gateway-bar");
    if (!bar) {
      bar = document.createElement("div");
      bar.id = "gateway-bar";
      bar.setAttribute("style", "font:13px sans-serif;padding:4px 8px;background:#222;color:#eee");
      document.body.insertBefore(bar, document.body.firstChild);
    }
    var text = data && data.authenticated && data.user
      ? "signed in as " + data.user.name
      : "not signed in";
    bar.setAttribute("data-authenticated", data && data.authenticated ? "true" : "false");
    bar.textContent = text;
  }
  function load() {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", "/api/whoami", true);
    xhr.withCredentials = true;
    xhr.onload = function () {
      try { show(JSON.parse(xhr.responseText)); } catch (e) { show(null); }
    };
    xhr.onerror = function () { show(null); };
    xhr.send();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", load);
  } else {
    load();
  }
})();
