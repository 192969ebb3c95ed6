/* The migration dashboard's logic, served at /_gateway/dashboard.js.

   Owns: the admin token in the browser (read once from #token=..., kept in
   sessionStorage, removed from the address bar), polling the admin API every
   second, and rendering the overview, the recent differences and the audit log.
   Actions POST to /_gateway/api/migrations/<name>/<action> after a confirm().

   Usage: open /_gateway/#token=<admin token>.

   API data is never parsed as HTML: services put hostile strings in diffs, so
   every value reaches the page through textContent or setAttribute. */
(function () {
  "use strict";

  var API = "/_gateway/api/";
  var TOKEN_KEY = "gateway-admin-token";
  var POLL_MS = 1000;
  var TIMEOUT_MS = 5000;
  var ACTIONS = ["shadow", "canary", "promote", "rollback", "retire"];
  var cards = new Map();      // migration name -> {root, fields}
  var diffRows = new Map();   // diff id -> element, so an opened <details> survives a poll
  var auditRows = new Map();
  var refusedPromote = new Set();
  var lastNow = null;
  var lastMigrations = [];

  /* ---------------------------------------------------------------- token -- */
  function takeToken() {
    var m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      var token = m[1];
      try { token = decodeURIComponent(token); } catch (e) { /* a stray %: keep it as typed */ }
      sessionStorage.setItem(TOKEN_KEY, token);
      // The fragment never reaches the server, but it stays in history and on screen.
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  /* ------------------------------------------------------------------ DOM -- */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    setup(node, attrs, children);
    return node;
  }

  function svg(tag, attrs, children) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setup(node, attrs, children);
    return node;
  }

  function setup(node, attrs, children) {
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== null && attrs[k] !== undefined) { node.setAttribute(k, String(attrs[k])); }
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) { return; }
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    });
  }

  function replace(node, children) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
    setup(node, null, children);
  }

  function table(head, rows) {
    return el("table", null, [
      el("thead", null, [el("tr", null, head.map(function (h) {
        return el("th", { "class": /^[#%]|ms|count|rate|requests|errors/.test(h) ? "num" : null }, [h]);
      }))]),
      el("tbody", null, rows)]);
  }

  /* -------------------------------------------------------------- formats -- */
  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(x < 0.001 && x > 0 ? 3 : 1) + "%"; }
  function ms(x) { return x === null || x === undefined ? "–" : Number(x).toFixed(1) + " ms"; }
  function num(x) { return x === null || x === undefined ? "–" : String(x); }
  function when(t) {
    if (typeof t !== "number") { return num(t); }
    var d = new Date(t * 1000);
    var iso = new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString();
    return lastNow !== null && Math.abs(lastNow - t) < 86400 ? iso.slice(11, 19) : iso.slice(0, 19).replace("T", " ");
  }
  function shown(v) {
    var s = typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v === undefined ? null : v);
    return s.length > 400 ? s.slice(0, 400) + "…" : s;
  }

  /* ------------------------------------------------------------------ API -- */
  function ApiError(status, text, problem) {
    this.status = status;
    this.problem = problem || {};
    this.message = status === 401 ? "the admin token is missing or wrong" : text;
  }

  function api(method, path, body) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, TIMEOUT_MS);
    var headers = { "Authorization": "Bearer " + takeToken(), "X-Gateway-Actor": "dashboard",
                    "Accept": "application/json" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(API + path, { method: method, headers: headers, cache: "no-store",
                               credentials: "omit", signal: ctl.signal,
                               body: body === undefined ? undefined : JSON.stringify(body) })
      .catch(function (e) {
        throw new ApiError(0, e && e.name === "AbortError"
          ? "the gateway did not answer within " + TIMEOUT_MS / 1000 + " s"
          : "the gateway is unreachable");
      })
      .then(function (resp) {
        return resp.text().then(function (text) {
          var data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
          if (!resp.ok) {
            var p = data && typeof data === "object" ? data : {};
            throw new ApiError(resp.status, (p.title || ("HTTP " + resp.status)) +
                               (p.detail ? ": " + p.detail : ""), p);
          }
          if (data === null) { throw new ApiError(resp.status, "the answer is not JSON"); }
          return data;
        });
      })
      .finally(function () { clearTimeout(timer); });
  }

  /* --------------------------------------------------------------- header -- */
  function renderStatus(ov) {
    var names = Object.keys(ov.services || {});
    var down = names.filter(function (n) { return ov.services[n].state !== "READY"; });
    var refused = (ov.migrations || []).filter(function (m) { return !(m.gate && m.gate.ok); });
    var cls = down.length ? "bad" : "ok";
    var text = (ov.migrations || []).length + " migration(s); " +
      (names.length ? (down.length ? down.length + " of " + names.length + " services not ready: " +
                       down.join(", ") : "all " + names.length + " services ready")
                    : "no service information (no arbiter)");
    if (refused.length) { text += "; gate closed for " + refused.map(function (m) { return m.name; }).join(", "); }
    replace(document.getElementById("status"), [el("span", { "class": "dot " + cls }), " ",
      el("span", { id: "status-text" }, [text])]);
    document.getElementById("updated").textContent = "updated " + when(ov.now);
  }

  function renderServices(services) {
    var names = Object.keys(services || {}).sort();
    var box = document.getElementById("services");
    if (!names.length) { replace(box, [el("p", { "class": "muted" }, ["no arbiter: service states unknown"])]); return; }
    replace(box, [table(["service", "state", "ready / replicas"], names.map(function (n) {
      var s = services[n];
      return el("tr", { "data-service": n }, [el("td", null, [n]),
        el("td", { "class": s.state === "READY" ? "ok" : "bad" }, [num(s.state)]),
        el("td", { "class": "num" }, [num(s.ready) + " / " + num(s.replicas)])]);
    }))]);
  }

  /* ---------------------------------------------------------------- cards -- */
  function makeCard(m) {
    var f = {};
    function field(name, cls) { f[name] = el("span", { "class": cls || name }); return f[name]; }
    var reason = el("input", { type: "text", "class": "reason", placeholder: "reason (optional)",
                               "aria-label": "reason" });
    var buttons = ACTIONS.map(function (a) {
      return el("button", { type: "button", "data-action": a,
                            "class": a === "rollback" || a === "retire" ? "danger" : null },
                [a.charAt(0).toUpperCase() + a.slice(1)]);
    });
    var force = el("button", { type: "button", "data-action": "force-promote", "class": "danger", hidden: "" },
                   ["Force promote"]);
    f.title = el("span", { "class": "target muted" });
    f.runtimes = el("tbody");
    f.gate = el("div", { "class": "gate" });
    f.chart = el("div", { "class": "chart-box" });
    f.msg = el("div", { "class": "card-message" });
    f.force = force;
    var root = el("div", { "class": "card", "data-migration": m.name }, [
      el("h3", null, [el("span", { "class": "name" }, [m.name]), field("mode"), field("percent", "percent muted"),
                      f.title]),
      el("div", { "class": "figures" }, [
        "traffic to py3", el("span", null, [el("span", { "class": "share" }, [field("bar", "")]), " ",
                                            field("share", "share-text")]),
        "samples", field("samples", "sample-count"),
        "regressions", field("regressions", "diff-count"),
        "diff rate", field("diffRate", "diff-rate"),
        "noise rate", field("noiseRate", "noise-rate"),
        "candidate errors / uncompared", field("errors", "candidate-errors"),
        "epoch started", field("epoch", "epoch"),
        "last change", field("changed", "changed")]),
      el("table", { "class": "runtimes" }, [el("thead", null, [el("tr", null,
        ["runtime", "requests", "req/s", "errors", "error rate", "p50", "p99"].map(function (h, i) {
          return el("th", { "class": i ? "num" : null }, [h]);
        }))]), f.runtimes]),
      f.gate, f.chart,
      el("div", { "class": "actions" }, buttons.concat([force, reason])), f.msg]);
    buttons.concat([force]).forEach(function (b) {
      b.addEventListener("click", function () { act(m.name, b.getAttribute("data-action"), reason, f); });
    });
    return { root: root, f: f };
  }

  function updateCard(card, m) {
    var f = card.f, st = m.state || {}, ev = m.evidence || {}, tr = m.traffic || {};
    f.mode.textContent = num(st.mode);
    f.mode.className = "mode mode-" + st.mode;
    f.percent.textContent = st.mode === "canary" ? num(st.percent) + "% to py3" : "";
    f.title.textContent = m.kind + " " + m.target + "  (" + m.py2 + " → " + m.py3 + ")" +
      (m.split ? "  broker: " + m.split.percent + "% to " + m.split.candidate + ", " +
        num(m.split.sent) + " sent / " + num(m.split.kept) + " kept" : "") +
      (m.broker_shadow ? "  shadow: " + num(m.broker_shadow.sent) + " copied / " + num(m.broker_shadow.answered) +
        " answered / " + num(m.broker_shadow.failed) + " failed / " +
        num(m.broker_shadow.skipped_cap + m.broker_shadow.skipped_down) + " skipped" : "");
    f.title.title = "state version " + num(st.version);
    f.share.textContent = pct(tr.py3_share) + " (" + num(tr.py2) + " py2 / " + num(tr.py3) + " py3)";
    f.bar.style.width = Math.round(100 * (tr.py3_share || 0)) + "%";  // CSSOM: allowed under a CSP
    f.samples.textContent = num(ev.samples);
    f.regressions.textContent = num(ev.regressions);
    f.diffRate.textContent = pct(ev.diff_rate);
    f.noiseRate.textContent = pct(ev.noise_rate) + " (" + num(ev.noise) + " noisy" +
      ((ev.noisy_paths || []).length ? ": " + ev.noisy_paths.join(", ") : "") + ")";
    f.errors.textContent = num(ev.candidate_errors) + " / " + num(ev.uncompared);
    f.epoch.textContent = when(st.epoch_started);
    f.changed.textContent = when(st.updated_at) + " by " + num(st.updated_by);
    replace(f.runtimes, ["py2", "py3"].map(function (rt) {
      var r = (m.runtimes || {})[rt] || {};
      // From the front's metrics ("source": "metrics"), the counters /_gateway/metrics serves.
      return el("tr", { "data-runtime": rt, "data-source": r.source || null,
                        title: r.source === "store" ? "sampled observations" : "the front's metrics" }, [
        el("td", null, [rt]), el("td", { "class": "num requests" }, [num(r.requests)]),
        el("td", { "class": "num rate" }, [r.rate === null || r.rate === undefined ? "–" : Number(r.rate).toFixed(2)]),
        el("td", { "class": "num errors" }, [num(r.errors)]), el("td", { "class": "num error-rate" }, [pct(r.error_rate)]),
        el("td", { "class": "num p50" }, [ms(r.p50_ms)]), el("td", { "class": "num p99" }, [ms(r.p99_ms)])]);
    }));
    var gate = m.gate || { ok: false, reasons: [] };
    replace(f.gate, [el("span", { "class": "gate-verdict " + (gate.ok ? "ok" : "warn") },
                        [gate.ok ? "gate open: promotion allowed" : "gate closed"]),
                     (gate.reasons || []).length ? el("ul", null, gate.reasons.map(function (r) {
                       return el("li", null, [r]); })) : null]);
    replace(f.chart, [chart(m.series || [])]);
    if (st.mode !== card.mode) { refusedPromote.delete(m.name); card.mode = st.mode; }
    f.force.hidden = !refusedPromote.has(m.name);
  }

  function chart(series) {
    var w = 300, h = 56, n = Math.max(series.length, 1), bw = w / n;
    var top = Math.max(1, Math.max.apply(null, series.map(function (s) { return s[1] || 0; })));
    var bars = [];
    series.forEach(function (s, i) {
      var x = (i * bw).toFixed(1), cmp = (s[1] || 0) / top * h, reg = (s[2] || 0) / top * h;
      var tip = svg("title", null, [when(s[0]) + ": " + (s[1] || 0) + " comparisons, " + (s[2] || 0) + " regressions"]);
      bars.push(svg("g", null, [tip,
        svg("rect", { "class": "cmp", x: x, y: (h - cmp).toFixed(1), width: Math.max(bw - 1, 1).toFixed(1), height: cmp.toFixed(1) }),
        svg("rect", { "class": "reg", x: x, y: (h - reg).toFixed(1), width: Math.max(bw - 1, 1).toFixed(1), height: reg.toFixed(1) })]));
    });
    return svg("svg", { "class": "chart", width: w, height: h, viewBox: "0 0 " + w + " " + h, role: "img",
                        "aria-label": "regressions (red) over comparisons (grey), max " + top + " per bucket" }, bars);
  }

  function renderMigrations(list) {
    var box = document.getElementById("migrations");
    var seen = new Set();
    if (!list.length) { replace(box, [el("p", { "class": "muted" }, ["no migrations configured"])]); cards.clear(); return; }
    if (box.querySelector("p.muted")) { replace(box, []); }
    list.forEach(function (m) {
      seen.add(m.name);
      var card = cards.get(m.name);
      if (!card) { card = makeCard(m); cards.set(m.name, card); box.appendChild(card.root); }
      updateCard(card, m);
    });
    cards.forEach(function (card, name) {
      if (!seen.has(name)) { card.root.remove(); cards.delete(name); }
    });
    var select = document.getElementById("diff-name");
    var current = select.value;
    var names = list.map(function (m) { return m.name; });
    if (Array.from(select.options).map(function (o) { return o.value; }).join("\n") !== names.join("\n")) {
      replace(select, names.map(function (n) { var o = el("option", null, [n]); o.value = n; return o; }));
      select.value = names.indexOf(current) >= 0 ? current : names[0];
    }
  }

  /* -------------------------------------------------------------- actions -- */
  function act(name, action, reasonInput, f) {
    var body = { reason: reasonInput.value || "from the dashboard" };
    var path = "migrations/" + encodeURIComponent(name) + "/";
    if (action === "canary") {
      var answer = window.prompt("Percent of " + name + " traffic to send to py3 (1-99):", "10");
      if (answer === null) { return; }
      var n = Number(answer);
      if (!/^\s*\d+\s*$/.test(answer) || n < 1 || n > 99) {
        say(false, "canary " + name + ": not a whole percent from 1 to 99: " + JSON.stringify(answer));
        return;
      }
      body.percent = n;
    }
    var verb = action === "force-promote" ? "promote" : action;
    if (verb === "promote") { body.force = action === "force-promote"; }
    var question = action === "force-promote"
      ? "Force " + name + " to py3 although the gate refused it?"
      : verb.charAt(0).toUpperCase() + verb.slice(1) + " " + name +
        (verb === "canary" ? " at " + body.percent + "%" : "") + "?";
    if (!window.confirm(question)) { return; }
    say(null, verb + " " + name + ": sending…");
    api("POST", path + verb, body).then(function (data) {
      var st = data.state || {};
      refusedPromote.delete(name);
      say(true, verb + " " + name + ": done, now " + st.mode + (st.mode === "canary" ? " " + st.percent + "%" : ""));
    }, function (err) {
      if (err.problem.code === "gate_refused") { refusedPromote.add(name); }
      say(false, verb + " " + name + ": " + (err.problem.code === "gate_refused" ? "refused by the gate" : err.message) +
          (err.problem.code ? " (" + err.problem.code + ")" : ""), err.problem.reasons);
    }).then(function () { f.force.hidden = !refusedPromote.has(name); poll(true); });
  }

  function say(ok, text, reasons) {
    var box = document.getElementById("message");
    box.className = ok === null ? "muted" : ok ? "ok" : "bad";
    replace(box, [el("span", { "class": "text" }, [text]),
                  reasons && reasons.length ? el("ul", { "class": "reasons" }, reasons.map(function (r) {
                    return el("li", null, [r]); })) : null]);
  }

  /* ---------------------------------------------------- diffs, audit, tox -- */
  // As gateway.migration.compare.normalise_path: noise on items/3/ts covers items/7/ts.
  function normalise(path) {
    return String(path).split("/").map(function (s) { return /^[0-9]+$/.test(s) ? "*" : s; }).join("/");
  }

  function renderDiffs(diffs, noisy) {
    // A row is keyed by its id and its noise marks, so noise learned after a difference
    // was shown re-draws that row with the fields marked.
    var items = diffs.map(function (d) {
      var marks = (d.fields || []).map(function (x) { return noisy.has(normalise(x.path)) ? "n" : "r"; });
      return { id: d.id + ":" + (d.noise ? "n" : "r") + marks.join(""), d: d };
    });
    keyed(document.getElementById("diffs"), diffRows, items, function (item) {
      var d = item.d;
      var fields = (d.fields || []).map(function (x) {
        var isNoise = noisy.has(normalise(x.path));
        return el("tr", { "class": isNoise ? "noisy muted" : null }, [
          el("td", null, [el("code", null, [num(x.path)])]),
          el("td", null, [num(x.kind) + (isNoise ? " (noise)" : "")]),
          el("td", null, [el("span", { "class": "value" }, [shown(x.left)])]),
          el("td", null, [el("span", { "class": "value" }, [shown(x.right)])])]);
      });
      // left is the primary's answer, right the candidate's (the shadow copy).
      var other = d.primary === "py3" ? "py2" : "py3";
      var tag = d.noise ? "noise" : d.outcome === "diff" ? "regression" : num(d.outcome);
      return el("div", { "class": "diff", "data-diff": d.id }, [
        el("div", null, [el("span", { "class": "tag " + (d.noise ? "noise" : "regression") }, [tag]), " ",
          when(d.at), " ", el("code", null, [num(d.method) + " " + num(d.path)]),
          el("span", { "class": "muted" }, [" " + num(d.outcome) + ", primary " + num(d.primary) + ", rid " + num(d.rid)])]),
        fields.length ? table(["field", "kind", num(d.primary) + " (primary)", other + " (candidate)"], fields) : null,
        el("details", null, [el("summary", null, ["sample (redacted)"]),
                             el("pre", null, [JSON.stringify(d.sample, null, 2)])])]);
    }, "no differences recorded");
  }

  function renderAudit(rows) {
    keyed(document.getElementById("audit"), auditRows, rows, function (a) {
      return el("div", { "class": "audit-row", "data-audit": a.id }, [when(a.at), " ",
        el("b", null, [num(a.name)]), ": " + (a.from ? num(a.from) + " → " + num(a.to) : "created as " + num(a.to)) +
          " by " + num(a.actor) + " ",
        a.forced ? el("span", { "class": "tag regression forced" }, ["forced"]) : null,
        a.reason ? el("span", { "class": "muted" }, [" — " + a.reason]) : null]);
    }, "no changes yet");
  }

  // Rows are immutable once written (a diff's noise marks are part of its key), so
  // existing ones are kept (and stay open).
  function keyed(box, rows, items, make, empty) {
    var want = items.map(function (it) { return String(it.id); });
    rows.forEach(function (node, id) { if (want.indexOf(id) < 0) { node.remove(); rows.delete(id); } });
    var next = null;
    for (var i = items.length - 1; i >= 0; i--) {
      var node = rows.get(want[i]);
      if (!node) { node = make(items[i]); rows.set(want[i], node); }
      box.insertBefore(node, next);
      next = node;
    }
    var placeholder = box.querySelector(":scope > p.muted");
    if (items.length && placeholder) { placeholder.remove(); }
    if (!items.length && !placeholder) { box.appendChild(el("p", { "class": "muted" }, [empty])); }
  }

  // `gateway contract test` adds the case-by-case verdict; the suite's counts alone do not.
  function parityCell(p) {
    if (!p) { return el("td", { "class": "muted", "data-parity": "" }, ["–"]); }
    var same = p.status === "same";
    return el("td", { "class": same ? "ok" : "bad", "data-parity": p.status },
              [same ? "same: " + num(p.cases) + " cases"
                    : "different: " + num(p.different) + " of " + num(p.cases) + " cases"]);
  }

  function renderParity(parity) {
    var box = document.getElementById("parity");
    if (!parity) { replace(box, [el("p", { "class": "muted" }, ["no tox parity report yet"])]); return; }
    var impl = parity.implementations || {};
    var head = ["service"].concat(["py2", "py3"].map(function (rt) {
      return rt + (impl[rt] ? " (Python " + num(impl[rt].python) + ")" : "");
    })).concat(["py2 = py3"]);
    var names = Object.keys(parity.services || {}).sort();
    replace(box, [table(head, names.map(function (n) {
      return el("tr", { "data-service": n }, [el("td", null, [n])].concat(["py2", "py3"].map(function (rt) {
        var c = parity.services[n][rt];
        if (!c) { return el("td", { "class": "muted" }, ["–"]); }
        return el("td", { "class": c.status === "pass" ? "ok" : "bad", "data-runtime": rt },
                  [num(c.status) + ": " + num(c.passed) + " passed, " + num(c.failed) + " failed"]);
      })).concat([parityCell(parity.services[n].parity)]));
    }))]);
  }

  /* ----------------------------------------------------------------- loop -- */
  var timer = null, inFlight = false, again = false;

  // One poll at a time; poll(true) from an action runs as soon as the current one ends.
  function poll(now) {
    if (inFlight) { again = again || !!now; return; }
    if (timer !== null) { clearTimeout(timer); timer = null; }
    inFlight = true;
    var name = document.getElementById("diff-name").value;
    api("GET", "overview").then(function (ov) {
      lastNow = ov.now;
      renderStatus(ov);
      lastMigrations = ov.migrations || [];
      renderMigrations(lastMigrations);
      renderServices(ov.services);
      renderParity(ov.parity);
      name = document.getElementById("diff-name").value || name;
      return Promise.all([
        name ? api("GET", "diffs?name=" + encodeURIComponent(name) + "&limit=20") : { diffs: [] },
        api("GET", "audit?limit=50")]);
    }).then(function (r) {
      var m = lastMigrations.filter(function (x) { return x.name === name; })[0];
      renderDiffs(r[0].diffs || [], new Set(m && m.evidence ? m.evidence.noisy_paths || [] : []));
      renderAudit(r[1].audit || []);
      banner(null);
    }, function (err) {
      banner(err instanceof ApiError ? err.message : "the dashboard failed: " + err);
    }).finally(function () {
      inFlight = false;
      if (again) { again = false; poll(true); } else { timer = setTimeout(poll, POLL_MS); }
    });
  }

  function banner(text) {
    var b = document.getElementById("banner");
    b.hidden = !text;
    b.textContent = text || "";
    document.getElementById("login").hidden = !(text && /token/.test(text));
    if (text) {
      replace(document.getElementById("status"), [el("span", { "class": "dot bad" }), " ",
        el("span", { id: "status-text" }, ["not connected"])]);
    }
  }

  function start() {
    takeToken();
    window.addEventListener("hashchange", function () { takeToken(); poll(true); });
    document.getElementById("diff-name").addEventListener("change", function () {
      diffRows.forEach(function (node) { node.remove(); });
      diffRows.clear();
      poll(true);
    });
    document.getElementById("login").addEventListener("submit", function (e) {
      e.preventDefault();
      var input = document.getElementById("token-input");
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      poll(true);
    });
    poll(true);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
