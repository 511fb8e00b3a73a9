/* brand-monitor dashboard: charts (vendored uPlot), their tables, live updates and a
 * few form helpers. Plain JavaScript, no build step, no request leaves the daemon.
 * Chart data comes from <script type="application/json"> elements rendered with the
 * page; live updates poll /ui/data/series. Times are shown in UTC. */
(function () {
  "use strict";

  // Okabe-Ito colours (safe with the common colour-vision deficiencies); shapes and
  // dashes carry the meaning too.
  var C = {
    mentions: "#0072B2", expected: "#000000", band: "rgba(86, 180, 233, 0.30)",
    alert: "#D55E00", negative: "#D55E00", usual: "#000000",
    fireNow: "#E69F00", fireNew: "#CC79A7"
  };
  var LIVE_EVERY = 30000;
  var charts = {};
  window.bmCharts = charts;

  function readJSON(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function utc(ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }

  function fmtTime(ts) { return new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " "); }

  function fmtNum(v, digits) {
    if (v === null || v === undefined) { return "-"; }
    return digits ? v.toFixed(digits) : String(v);
  }

  function xs(src) {
    var out = new Array(src.count);
    for (var i = 0; i < src.count; i++) { out[i] = src.start + i * src.step; }
    return out;
  }

  function countPoints(values) {
    var n = 0;
    for (var i = 0; i < values.length; i++) { if (values[i] !== null) { n++; } }
    return n;
  }

  // expected +- 2 sqrt(expected): the typical range of a count around its expectation
  function bandOf(expected) {
    var lo = new Array(expected.length), hi = new Array(expected.length);
    for (var i = 0; i < expected.length; i++) {
      var e = expected[i];
      if (e === null) { lo[i] = hi[i] = null; continue; }
      var w = 2 * Math.sqrt(e);
      lo[i] = Math.max(0, +(e - w).toFixed(2));
      hi[i] = +(e + w).toFixed(2);
    }
    return [lo, hi];
  }

  function mentionsData(src, brand) {
    var b = src.brands[brand];
    if (!b) { return null; }
    var band = bandOf(b.expected);
    return [xs(src), band[0], band[1], b.expected, b.posts];
  }

  function plotWidth(fig) {
    var plot = fig.querySelector(".plot");
    return Math.max(240, Math.floor((plot.clientWidth || fig.clientWidth || 600) - 4));
  }

  function axes(yLabel, yFormat) {
    var grid = { stroke: "#e5e5e5", width: 1 };
    var y = { label: yLabel, grid: grid, size: 56 };
    if (yFormat) { y.values = function (u, vals) { return vals.map(yFormat); }; }
    return [{ grid: grid, stroke: "#333" }, y];
  }

  // -- alert markers: drawn triangles plus focusable links placed over them ------------
  function drawMarkers(u) {
    var list = u.bmMarkers || [];
    var ctx = u.ctx, top = u.bbox.top;
    var min = u.scales.x.min, max = u.scales.x.max;
    ctx.save();
    for (var i = 0; i < list.length; i++) {
      var m = list[i];
      if (m.at < min || m.at > max) { continue; }
      var x = Math.round(u.valToPos(m.at, "x", true));
      var s = 7 * devicePixelRatio;
      ctx.fillStyle = m.color || C.alert;
      ctx.beginPath();
      if (m.down) {
        ctx.moveTo(x - s, top + 2); ctx.lineTo(x + s, top + 2); ctx.lineTo(x, top + 2 + 1.6 * s);
      } else {
        ctx.moveTo(x, top + 2); ctx.lineTo(x + s, top + 2 + 1.6 * s); ctx.lineTo(x - s, top + 2 + 1.6 * s);
      }
      ctx.closePath();
      ctx.fill();
      ctx.strokeStyle = m.color || C.alert;
      ctx.setLineDash([2 * devicePixelRatio, 2 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(x, top + 2 + 1.6 * s); ctx.lineTo(x, top + u.bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  }

  function placeLinks(u) {
    var layer = u.bmLayer;
    if (!layer) { return; }
    var min = u.scales.x.min, max = u.scales.x.max;
    var links = layer.children;
    for (var i = 0; i < links.length; i++) {
      var at = +links[i].dataset.at;
      var inside = at >= min && at <= max;
      links[i].hidden = !inside;
      if (inside) {
        links[i].style.left = (u.over.offsetLeft + u.valToPos(at, "x") - 9) + "px";
        links[i].style.top = (u.over.offsetTop - 2) + "px";
      }
    }
  }

  function setLinks(u, alerts) {
    var layer = u.bmLayer;
    if (!layer) {
      layer = document.createElement("div");
      layer.className = "marker-layer";
      u.over.parentNode.appendChild(layer);
      u.bmLayer = layer;
    }
    layer.textContent = "";
    alerts.forEach(function (a) {
      var link = document.createElement("a");
      link.className = "marker sev-" + a.severity;
      link.href = "/ui/alerts/" + encodeURIComponent(a.id);
      link.dataset.at = a.x === undefined ? a.at : a.x;
      link.dataset.alertId = a.id;
      link.setAttribute("aria-label", "Alert at " + fmtTime(a.at) + " UTC: " + a.title);
      link.title = fmtTime(a.at) + " UTC: " + a.title;
      link.textContent = "\u25B2";
      layer.appendChild(link);
    });
    placeLinks(u);
  }

  // -- tables: the numbers behind each chart, built when first opened -----------------
  function fillTable(fig, headers, rows) {
    var slot = fig.querySelector(".table-slot");
    if (!slot) { return; }
    var table = document.createElement("table");
    table.className = "numbers-table";
    var cap = document.createElement("caption");
    cap.textContent = (fig.querySelector("figcaption") || {}).textContent || "";
    table.appendChild(cap);
    var head = table.createTHead().insertRow();
    headers.forEach(function (h) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      head.appendChild(th);
    });
    var body = table.createTBody();
    rows.forEach(function (r) {
      var tr = body.insertRow();
      r.forEach(function (v, j) {
        var cell = j === 0 ? document.createElement("th") : document.createElement("td");
        if (j === 0) { cell.scope = "row"; } else { cell.className = "num"; }
        cell.textContent = v;
        tr.appendChild(cell);
      });
    });
    slot.textContent = "";
    slot.appendChild(table);
    fig.dataset.tableRows = rows.length;
  }

  function lazyTable(fig, build) {
    var details = fig.querySelector("details.numbers");
    if (!details) { return; }
    fig.bmTable = build;
    details.addEventListener("toggle", function () {
      if (details.open) { fig.bmTable(); }
    });
    if (details.open) { build(); }
  }

  // -- mentions chart -----------------------------------------------------------------
  function makeMentions(fig, src) {
    var brand = fig.dataset.brand;
    var data = mentionsData(src, brand);
    if (!data) { return; }
    var small = fig.classList.contains("small");
    var opts = {
      width: plotWidth(fig), height: +(fig.dataset.height || 260), tzDate: utc,
      legend: { show: !small },
      cursor: { drag: { x: true, y: false }, points: { show: !small } },
      scales: { x: { time: true }, y: { range: function (u, lo, hi) { return [0, Math.max(5, hi * 1.15)]; } } },
      series: [
        {},
        { label: "typical low", stroke: "transparent", points: { show: false } },
        { label: "typical high", stroke: "transparent", points: { show: false } },
        { label: "expected", stroke: C.expected, dash: [5, 4], width: 1, points: { show: false } },
        { label: "mentions", stroke: C.mentions, width: small ? 1 : 1.5, points: { show: false } }
      ],
      bands: [{ series: [2, 1], fill: C.band }],
      axes: axes(small ? "" : "mentions / 5 min"),
      hooks: {
        draw: [drawMarkers],
        setScale: [function (u, key) { if (key === "x") { placeLinks(u); } }],
        setSize: [placeLinks]
      }
    };
    var u = new uPlot(opts, data, fig.querySelector(".plot"));
    u.bmFig = fig;
    u.bmSource = src;
    charts[fig.id] = u;
    updateMentions(u, false);
    lazyTable(fig, function () {
      var d = u.data, rows = [];
      for (var i = 0; i < d[0].length; i++) {
        if (d[4][i] === null && d[3][i] === null) { continue; }
        rows.push([fmtTime(d[0][i]), fmtNum(d[4][i]), fmtNum(d[3][i], 1),
                   d[3][i] === null ? "-" : fmtNum(d[1][i], 1) + " to " + fmtNum(d[2][i], 1)]);
      }
      fillTable(fig, ["Time (UTC)", "Mentions", "Expected", "Typical range"], rows);
    });
  }

  function updateMentions(u, keepScale) {
    var fig = u.bmFig, src = u.bmSource, brand = fig.dataset.brand;
    var data = mentionsData(src, brand);
    var alerts = (src.alerts || []).filter(function (a) { return a.brand === brand; });
    // a marker stands on its 5-minute bucket (the newest bucket holds alerts of "now")
    alerts.forEach(function (a) { a.x = a.at - (a.at % src.step); });
    u.bmMarkers = alerts.map(function (a) { return { at: a.x, color: C.alert }; });
    if (keepScale) {
      var min = u.scales.x.min, max = u.scales.x.max;
      u.setData(data, false);
      u.setScale("x", { min: min, max: max });
    } else {
      u.setData(data);
    }
    setLinks(u, alerts);
    fig.dataset.points = countPoints(data[4]);
    fig.dataset.buckets = data[0].length;
    fig.dataset.alerts = alerts.length;
    fig.dataset.ready = "1";
    var details = fig.querySelector("details.numbers");
    if (details && details.open && fig.bmTable) { fig.bmTable(); }
  }

  // -- negative share chart -------------------------------------------------------------
  function makeNegative(fig, src) {
    var x = xs(src);
    var pct = function (v) { return v === null ? null : +(v * 100).toFixed(2); };
    var data = [x, src.share.map(pct), src.usual.map(pct)];
    var opts = {
      width: plotWidth(fig), height: +(fig.dataset.height || 200), tzDate: utc,
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true }, y: { range: function (u, lo, hi) { return [0, Math.max(10, Math.min(100, hi * 1.2))]; } } },
      series: [
        {},
        { label: "negative share %", stroke: C.negative, width: 1.5, points: { show: false } },
        { label: "usual %", stroke: C.usual, dash: [6, 4], width: 1, points: { show: false } }
      ],
      axes: axes("% negative", function (v) { return v + "%"; })
    };
    var u = new uPlot(opts, data, fig.querySelector(".plot"));
    charts[fig.id] = u;
    fig.dataset.points = countPoints(data[1]);
    fig.dataset.ready = "1";
    lazyTable(fig, function () {
      var rows = [];
      for (var i = 0; i < x.length; i++) {
        if (data[1][i] === null && data[2][i] === null) { continue; }
        rows.push([fmtTime(x[i]), fmtNum(data[1][i], 1), fmtNum(data[2][i], 1)]);
      }
      fillTable(fig, ["Hour (UTC)", "Negative share %", "Usual %"], rows);
    });
  }

  // -- what-if chart --------------------------------------------------------------------
  function makeWhatIf(fig, result) {
    var s = result.series;
    var toTs = function (iso) { return Date.parse(iso) / 1000; };
    var now = {}, next = {};
    result.current.fired.forEach(function (t) { now[toTs(t)] = true; });
    result.proposed.fired.forEach(function (t) { next[toTs(t)] = true; });
    var markers = Object.keys(now).map(function (t) { return { at: +t, color: C.fireNow }; })
      .concat(Object.keys(next).map(function (t) { return { at: +t, color: C.fireNew, down: true }; }));
    var opts = {
      width: plotWidth(fig), height: +(fig.dataset.height || 220), tzDate: utc,
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      series: [{}, { label: "mentions / bucket", stroke: C.mentions, width: 1, points: { show: false } }],
      axes: axes("mentions"),
      hooks: { draw: [function (u) { u.bmMarkers = markers; drawMarkers(u); }] }
    };
    var u = new uPlot(opts, [s.times, s.counts], fig.querySelector(".plot"));
    charts[fig.id] = u;
    fig.dataset.points = s.counts.length;
    fig.dataset.ready = "1";
    lazyTable(fig, function () {
      var rows = [];
      for (var i = 0; i < s.times.length; i++) {
        var t = s.times[i];
        if (!now[t] && !next[t] && s.counts[i] === 0) { continue; }
        rows.push([fmtTime(t), fmtNum(s.counts[i]), now[t] ? "fires" : "", next[t] ? "fires" : ""]);
      }
      fillTable(fig, ["Bucket (UTC)", "Mentions", "Now", "New sensitivity"], rows);
    });
  }

  // -- zoom buttons (keyboard-operable; dragging across a chart zooms too) ------------
  function zoom(u, how) {
    var d = u.data[0];
    if (!d.length) { return; }
    var lo = d[0], hi = d[d.length - 1];
    var min = u.scales.x.min, max = u.scales.x.max, w = max - min, mid = (min + max) / 2;
    if (how === "in") { min = mid - w / 4; max = mid + w / 4; }
    else if (how === "out") { min = mid - w; max = mid + w; }
    else if (how === "left") { min -= w / 2; max -= w / 2; }
    else if (how === "right") { min += w / 2; max += w / 2; }
    else { min = lo; max = hi; }
    if (max - min < 1800) { return; }
    if (min < lo) { max += lo - min; min = lo; }
    if (max > hi) { min -= max - hi; max = hi; }
    u.setScale("x", { min: Math.max(lo, min), max: Math.min(hi, max) });
  }

  function wireZoom() {
    document.querySelectorAll(".zoom").forEach(function (group) {
      group.addEventListener("click", function (ev) {
        var how = ev.target && ev.target.dataset ? ev.target.dataset.zoom : null;
        var u = charts[group.dataset.for];
        if (how && u) { zoom(u, how); }
      });
    });
  }

  // -- live updates: poll the newest buckets and merge them -------------------------
  function merge(src, upd) {
    var step = src.step, n = src.count;
    var end = upd.start + (upd.count - 1) * step;
    var oldEnd = src.start + (n - 1) * step;
    if (end < oldEnd) { end = oldEnd; }
    var first = end - (n - 1) * step;
    Object.keys(src.brands).forEach(function (brand) {
      var old = src.brands[brand], fresh = upd.brands[brand];
      ["posts", "expected"].forEach(function (key) {
        var out = new Array(n);
        for (var i = 0; i < n; i++) {
          var t = first + i * step;
          var j = (t - upd.start) / step;
          if (fresh && j >= 0 && j < upd.count) { out[i] = fresh[key][j]; continue; }
          var k = (t - src.start) / step;
          out[i] = k >= 0 && k < n ? old[key][k] : null;
        }
        old[key] = out;
      });
    });
    src.start = first;
    var seen = {};
    var alerts = (src.alerts || []).concat(upd.alerts || []).filter(function (a) {
      if (seen[a.id] || a.at < first) { return false; }
      seen[a.id] = true;
      return true;
    });
    src.alerts = alerts;
  }

  function live(el, src) {
    var url = el.dataset.live;
    if (!url) { return; }
    var poll = function () {
      var since = src.start + (src.count - 3) * src.step;
      return fetch(url + "&since=" + since, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (upd) {
          if (!upd) { return false; }
          merge(src, upd);
          Object.keys(charts).forEach(function (id) {
            var u = charts[id];
            if (u.bmSource === src) { updateMentions(u, true); }
          });
          return true;
        })
        .catch(function () { return false; /* the next poll tries again */ });
    };
    window.bmPoll = poll;  // one update now (the page polls every 30 s by itself)
    setInterval(function () { if (!document.hidden) { poll(); } }, LIVE_EVERY);
  }

  // -- forms ------------------------------------------------------------------------
  function wireSilencePreview() {
    document.querySelectorAll("form[data-preview]").forEach(function (form) {
      var timer = null;
      var update = function () {
        var params = new URLSearchParams();
        ["rule", "brand", "kind", "severity"].forEach(function (k) {
          var v = form.elements[k] && form.elements[k].value.trim();
          if (v) { params.set(k, v); }
        });
        fetch("/ui/data/silence-preview?" + params.toString(), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (res) {
            if (!res) { return; }
            form.querySelector(".preview-count").textContent = res.count;
            form.querySelector(".preview-rest").textContent = " alert" +
              (res.count === 1 ? "" : "s") + " in the last " + Math.round(res.hours) + " h.";
          })
          .catch(function () { /* keep the last preview */ });
      };
      form.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(update, 250);
      });
    });
  }

  function wireSelectAll() {
    document.querySelectorAll("input.select-all").forEach(function (box) {
      box.addEventListener("change", function () {
        document.querySelectorAll("input[name=ids][form=bulk]").forEach(function (b) {
          b.checked = box.checked;
        });
      });
    });
  }

  function wireNewAlerts() {
    var note = document.querySelector(".new-alerts");
    if (!note) { return; }
    setInterval(function () {
      if (document.hidden) { return; }
      fetch("/ui/data/latest-alert", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (res) {
          if (res && res.id && res.id !== note.dataset.latest) { note.hidden = false; }
        })
        .catch(function () { /* try again later */ });
    }, LIVE_EVERY);
  }

  // -- start ------------------------------------------------------------------------
  function start() {
    var sources = {};
    var source = function (id) {
      if (!(id in sources)) { sources[id] = readJSON(id); }
      return sources[id];
    };
    document.querySelectorAll("figure.chart[data-chart]").forEach(function (fig) {
      var src = source(fig.dataset.source);
      if (!src) { return; }
      var kind = fig.dataset.chart;
      if (kind === "mentions") { makeMentions(fig, src); }
      else if (kind === "negative") { makeNegative(fig, src); }
      else if (kind === "whatif") { makeWhatIf(fig, src); }
    });
    var series = document.getElementById("series-data");
    if (series && series.dataset.live) { live(series, source("series-data")); }
    wireZoom();
    wireSilencePreview();
    wireSelectAll();
    wireNewAlerts();
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (id) {
        var fig = document.getElementById(id);
        if (fig) { charts[id].setSize({ width: plotWidth(fig), height: charts[id].height }); }
      });
    });
    document.body.dataset.chartsReady = String(Object.keys(charts).length);
    if (window.performance && performance.mark) { performance.mark("bm-charts-ready"); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
