// rill web-view: the page's live behaviour. The server renders everything first; this script
// adds the chart, live updates over Server-Sent Events and local times. Data is always put
// into the page with textContent (never innerHTML), so sensor ids cannot inject markup.
(function () {
  "use strict";

  var body = document.body;
  var staleAfter = Number(body.dataset.staleAfter || 60) * 1000;
  var silentAfter = Number(body.dataset.silentAfter || 600) * 1000;
  var firstPage = body.dataset.firstPage === "1";
  var tableFilter = body.dataset.filter || "";
  var clockSkew = Date.now() - Number(body.dataset.now || Date.now());
  var pageRows = Math.max(document.querySelectorAll("#readings tbody tr").length, 50);

  var cardsEl = document.getElementById("cards");
  var sensorSelect = document.getElementById("chart-sensor");
  var tableSelect = document.getElementById("table-sensor");
  var tbody = document.querySelector("#readings tbody");
  var live = document.getElementById("live");
  var note = document.getElementById("chart-note");

  function now() { return Date.now() - clockSkew; }
  // One decimal, as the server renders it (format_fixed1 in core/text.cpp): "-0.0" is "0.0".
  function fixed1(v) {
    if (v === null || v === undefined || !isFinite(v)) return "\u2014"; // not measured: an em dash
    var s = Number(v).toFixed(1);
    return s === "-0.0" ? "0.0" : s;
  }
  // A table cell's value with its unit; the dash alone for a value not measured.
  function withUnit(v, unit) {
    var t = fixed1(v);
    return t === "\u2014" ? t : t + " " + unit;
  }

  // A dygraphs custom bar [low, value, high], or null (a gap in the line) when not measured.
  function bar(lo, mid, hi) {
    return mid === null || mid === undefined ? null : [lo, mid, hi];
  }

  function ago(ms) {
    var s = Math.floor(ms / 1000);
    if (s < 2) return "just now";
    if (s < 120) return s + " s ago";
    if (s < 7200) return Math.floor(s / 60) + " min ago";
    if (s < 172800) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }
  function status(ms) { return ms <= staleAfter ? "fresh" : ms <= silentAfter ? "stale" : "silent"; }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function localTime(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // --- cards --------------------------------------------------------------------------------
  function findCard(sensor) {
    var cards = cardsEl.querySelectorAll(".card");
    for (var i = 0; i < cards.length; i++) if (cards[i].dataset.sensor === sensor) return cards[i];
    return null;
  }
  function addOption(select, sensor) {
    for (var i = 0; i < select.options.length; i++) if (select.options[i].value === sensor) return;
    var o = el("option", "", sensor);
    o.value = sensor;
    select.appendChild(o);
  }
  function makeCard(sensor) {
    var card = el("article", "card");
    card.dataset.sensor = sensor;
    var head = el("header");
    var h = el("h3", "sensor", sensor);
    h.title = sensor;
    head.appendChild(h);
    head.appendChild(el("span", "status status-fresh", "fresh"));
    card.appendChild(head);
    var values = el("div", "values");
    [["temp", "°C", "temperature"], ["hum", "%", "humidity"]].forEach(function (v) {
      var d = el("div", "value " + v[0]);
      d.appendChild(el("span", "num", "\u2014"));
      d.appendChild(el("span", "unit", v[1]));
      d.appendChild(el("span", "label", v[2]));
      values.appendChild(d);
    });
    card.appendChild(values);
    var foot = el("footer");
    foot.appendChild(el("time", "ago", ""));
    var seq = el("span", "seq", "");
    seq.title = "sequence number of this reading: the sensor counts its readings 1, 2, 3, ... (a gap means readings not received yet)";
    foot.appendChild(seq);
    card.appendChild(foot);
    // Keep cards sorted by sensor id, as the server renders them.
    var after = null;
    var cards = cardsEl.querySelectorAll(".card");
    for (var i = 0; i < cards.length; i++) if (cards[i].dataset.sensor > sensor) { after = cards[i]; break; }
    cardsEl.insertBefore(card, after || cardsEl.querySelector(".empty"));
    card.addEventListener("click", function () { selectSensor(sensor); });
    var empty = cardsEl.querySelector(".empty");
    if (empty) empty.hidden = true;
    addOption(sensorSelect, sensor);
    if (tableSelect) addOption(tableSelect, sensor);
    if (!chartState.sensor) selectSensor(sensor);
    return card;
  }
  function updateCard(r) {
    var card = findCard(r.sensor) || makeCard(r.sensor);
    // Same rule as web-view's live_reading_supersedes: a card holds against a reading only when
    // it is newer by seq and by time, and its time is not more than 5 minutes in the future (a
    // forged reading cannot freeze the card).
    var shownTs = Number(card.dataset.ts || 0);
    if (Number(card.dataset.seq || 0) > r.seq && shownTs >= r.ts_ms && shownTs <= Date.now() + 300000) return;
    card.dataset.ts = String(r.ts_ms);
    card.dataset.seq = String(r.seq);
    delete card.dataset.publisher; // a reading proves its publisher is alive
    card.querySelector(".temp .num").textContent = fixed1(r.temperature);
    card.querySelector(".hum .num").textContent = fixed1(r.humidity);
    card.querySelector(".seq").textContent = "seq " + r.seq;
    var t = card.querySelector("time");
    t.setAttribute("datetime", r.ts);
    card.classList.remove("flash");
    void card.offsetWidth; // restart the animation
    card.classList.add("flash");
    tick();
  }
  function tick() {
    var cards = cardsEl.querySelectorAll(".card");
    for (var i = 0; i < cards.length; i++) {
      var c = cards[i];
      var age = now() - Number(c.dataset.ts);
      var st = status(age);
      // Its publisher stopped sending heartbeats: no need to wait for the age to tell.
      var quiet = c.dataset.publisher === "silent" && st === "fresh";
      if (quiet) st = "stale";
      c.dataset.status = st;
      var badge = c.querySelector(".status");
      badge.className = "status status-" + st;
      badge.textContent = quiet ? "publisher silent" : st;
      badge.title = quiet ? "its publisher stopped sending heartbeats" : "";
      c.querySelector("time").textContent = ago(age);
    }
  }

  // --- chart --------------------------------------------------------------------------------
  // The range is one of RANGES (sliding, ending now) or "custom" (from/to in ms). It lives in the
  // page's URL (?chart=SENSOR&range=7d, or &from=ISO&to=ISO) so that a view can be shared and a
  // reload restores it; the table's own parameters (sensor, cursor) are left as they are.
  var RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "1y": 365 * 86400 };
  var chartState = { sensor: "", range: "1h", from: null, to: null, unzoomed: null };
  var graph = null;
  var rows = [];
  var loadSerial = 0;
  var chartEl = document.getElementById("chart");
  var csvLink = document.getElementById("chart-csv");
  var zoomReset = document.getElementById("zoom-reset");

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function rangeBounds() {
    if (chartState.range === "custom") return [chartState.from, chartState.to];
    var to = now();
    return [to - RANGES[chartState.range] * 1000, to];
  }

  // The browser's time zone, as the chart and the table show their times in it.
  function zoneName() {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    var off = -new Date().getTimezoneOffset();
    var utc = "UTC" + (off === 0 ? "" : (off > 0 ? "+" : "-") + pad(Math.floor(Math.abs(off) / 60)) + ":" + pad(Math.abs(off) % 60));
    return zone && zone !== "UTC" && zone !== "Etc/UTC" ? zone + " (" + utc + ")" : utc;
  }

  function onZoom(minX, maxX) {
    if (!graph.isZoomed("x")) { // a double click (or a vertical drag, which zooms the values)
      if (!graph.isZoomed("y")) resetZoom();
      return;
    }
    if (!chartState.unzoomed) {
      chartState.unzoomed = { range: chartState.range, from: chartState.from, to: chartState.to };
    }
    chartState.range = "custom";
    chartState.from = Math.round(minX);
    chartState.to = Math.round(maxX);
    showRange();
    loadChart(); // the zoomed window again, at its own resolution
  }

  function resetZoom() {
    var u = chartState.unzoomed;
    if (!u) return;
    chartState.unzoomed = null;
    chartState.range = u.range;
    chartState.from = u.from;
    chartState.to = u.to;
    showRange();
    loadChart();
  }

  function drawChart() {
    if (!window.Dygraph) { note.textContent = "The chart library did not load."; return; }
    var b = rangeBounds();
    // Empty rows at the range's ends make the time axis span the whole range.
    var data = rows.slice();
    if (!data.length || data[0][0].getTime() > b[0]) data.unshift([new Date(b[0]), null, null]);
    if (data[data.length - 1][0].getTime() < b[1]) data.push([new Date(b[1]), null, null]);
    var opts = {
      file: data,
      labels: ["Time", "Temperature °C", "Humidity %"],
      customBars: true,
      colors: [css("--temp") || "#e4572e", css("--hum") || "#2a7de1"],
      series: { "Humidity %": { axis: "y2" } },
      axes: {
        y: { axisLabelWidth: 42 },
        y2: { axisLabelWidth: 42, independentTicks: true, drawGrid: false }
      },
      ylabel: "°C",
      y2label: "%",
      legend: "always",
      labelsDiv: document.getElementById("chart-legend"),
      labelsSeparateLines: false,
      strokeWidth: 1.8,
      fillAlpha: 0.18,
      gridLineColor: css("--line") || "#e2e7ef",
      axisLineColor: css("--line") || "#e2e7ef",
      connectSeparatedPoints: false,
      animatedZooms: false,
      zoomCallback: onZoom,
      dateWindow: null
    };
    if (!graph) {
      graph = new Dygraph(chartEl, data, opts);
    } else {
      graph.updateOptions(opts);
    }
    chartEl.dataset.points = String(rows.length); // what is drawn, for tests and tools
    note.textContent = rows.length ? "" : "No readings of " + (chartState.sensor || "any sensor") + " in this range.";
  }

  // The query of the chart's api/series request; Export CSV asks api/series.csv the same.
  function seriesQuery() {
    var b = rangeBounds();
    var width = chartEl.clientWidth || 800;
    var points = Math.max(60, Math.min(1500, Math.round(width)));
    return "sensor=" + encodeURIComponent(chartState.sensor) +
      "&from=" + encodeURIComponent(new Date(b[0]).toISOString()) +
      "&to=" + encodeURIComponent(new Date(b[1]).toISOString()) + "&points=" + points;
  }

  function loadChart() {
    if (!chartState.sensor) { rows = []; drawChart(); return; }
    var query = seriesQuery();
    var url = "api/series?" + query; // relative: works under a proxy's path prefix
    chartEl.dataset.request = url;
    csvLink.href = "api/series.csv?" + query;
    var serial = ++loadSerial;
    fetch(url).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    }).then(function (j) {
      if (serial !== loadSerial) return;
      rows = [];
      (j.series || []).forEach(function (s) {
        if (s.sensor !== chartState.sensor) return;
        s.buckets.forEach(function (k) {
          rows.push([new Date(k[0]), bar(k[2], k[1], k[3]), bar(k[5], k[4], k[6])]);
        });
      });
      drawChart();
      chartEl.dataset.drawn = url; // the request whose answer is drawn, for tests and tools
    }).catch(function (e) {
      if (serial !== loadSerial) return;
      note.textContent = "Could not load the chart: " + e.message;
    });
  }

  function appendToChart(r) {
    if (r.sensor !== chartState.sensor || chartState.range === "custom") return;
    var d = new Date(r.ts_ms);
    if (rows.length && rows[rows.length - 1][0] >= d) return;
    rows.push([d, bar(r.temperature, r.temperature, r.temperature), bar(r.humidity, r.humidity, r.humidity)]);
    var start = now() - RANGES[chartState.range] * 1000;
    while (rows.length && rows[0][0].getTime() < start) rows.shift();
    drawChart();
  }

  function selectSensor(sensor) {
    chartState.sensor = sensor;
    sensorSelect.value = sensor;
    var cards = cardsEl.querySelectorAll(".card");
    for (var i = 0; i < cards.length; i++) cards[i].classList.toggle("selected", cards[i].dataset.sensor === sensor);
    showRange();
    loadChart();
  }

  function toLocalInput(ms) {
    var d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  var rangeButtons = document.querySelectorAll(".ranges button");
  var customForm = document.getElementById("custom-range");

  // Shows chartState in the buttons, the reset button and the page's URL.
  function showRange() {
    Array.prototype.forEach.call(rangeButtons, function (b) {
      b.classList.toggle("active", b.dataset.range === chartState.range);
    });
    zoomReset.hidden = !chartState.unzoomed;
    var q = new URLSearchParams(location.search);
    ["chart", "range", "from", "to"].forEach(function (k) { q.delete(k); });
    if (chartState.sensor) q.set("chart", chartState.sensor);
    if (chartState.range === "custom") {
      q.set("from", new Date(chartState.from).toISOString());
      q.set("to", new Date(chartState.to).toISOString());
    } else {
      q.set("range", chartState.range);
    }
    var search = "?" + q.toString();
    if (search !== location.search) history.replaceState(null, "", search + location.hash);
  }

  // The range the page's URL asks for, if any.
  function rangeFromUrl() {
    var q = new URLSearchParams(location.search);
    var from = Date.parse(q.get("from") || ""), to = Date.parse(q.get("to") || "");
    if (from < to) {
      chartState.range = "custom";
      chartState.from = from;
      chartState.to = to;
    } else if (RANGES.hasOwnProperty(q.get("range"))) {
      chartState.range = q.get("range");
    }
    return q.get("chart");
  }

  Array.prototype.forEach.call(rangeButtons, function (btn) {
    btn.addEventListener("click", function () {
      if (btn.dataset.range === "custom") {
        Array.prototype.forEach.call(rangeButtons, function (b) { b.classList.toggle("active", b === btn); });
        customForm.hidden = false;
        var b = rangeBounds();
        document.getElementById("range-from").value = toLocalInput(b[0]);
        document.getElementById("range-to").value = toLocalInput(b[1]);
        return;
      }
      customForm.hidden = true;
      chartState.range = btn.dataset.range;
      chartState.unzoomed = null;
      showRange();
      loadChart();
    });
  });
  customForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var from = new Date(document.getElementById("range-from").value).getTime();
    var to = new Date(document.getElementById("range-to").value).getTime();
    if (!(from < to)) { note.textContent = "The range must end after it starts."; return; }
    chartState.range = "custom";
    chartState.from = from;
    chartState.to = to;
    chartState.unzoomed = null;
    showRange();
    loadChart();
  });
  zoomReset.addEventListener("click", resetZoom);
  // After a zoom the chart shows the fetched window unzoomed, so dygraphs' own double click has
  // nothing to reset: go back to the range from before the zoom.
  chartEl.addEventListener("dblclick", function () { if (graph && !graph.isZoomed("x")) resetZoom(); });
  sensorSelect.addEventListener("change", function () { selectSensor(sensorSelect.value); });
  Array.prototype.forEach.call(cardsEl.querySelectorAll(".card"), function (card) {
    card.addEventListener("click", function () { selectSensor(card.dataset.sensor); });
  });

  // --- table --------------------------------------------------------------------------------
  var seen = {};
  // Date and time in two spans, as the server renders them (on a phone: on two lines).
  function setTime(t, d) {
    var s = localTime(d);
    t.textContent = "";
    t.appendChild(el("span", "d", s.slice(0, 10)));
    t.appendChild(document.createTextNode(" "));
    t.appendChild(el("span", "t", s.slice(11)));
  }
  function localizeTable() {
    var times = tbody.querySelectorAll("time");
    for (var i = 0; i < times.length; i++) setTime(times[i], new Date(times[i].getAttribute("datetime")));
    var tz = document.querySelector("#readings th .tz");
    if (tz) tz.textContent = zoneName();
    document.getElementById("chart-tz").textContent = "Times in " + zoneName() + ", this browser's time zone. Drag across the chart to zoom in.";
    var trs = tbody.querySelectorAll("tr");
    for (var j = 0; j < trs.length; j++) seen[trs[j].dataset.key] = true;
  }
  function prependRow(r) {
    if (!firstPage || (tableFilter && tableFilter !== r.sensor)) return;
    var key = r.sensor + "/" + r.seq;
    if (seen[key]) return;
    seen[key] = true;
    var tr = el("tr", "new");
    tr.dataset.key = key;
    var td = el("td");
    var t = el("time");
    setTime(t, new Date(r.ts_ms));
    t.setAttribute("datetime", r.ts);
    td.appendChild(t);
    tr.appendChild(td);
    tr.appendChild(el("td", "sensor", r.sensor));
    tr.appendChild(el("td", "num", withUnit(r.temperature, "°C")));
    tr.appendChild(el("td", "num", withUnit(r.humidity, "%")));
    // Newest first: insert before the first row that is older.
    var trs = tbody.querySelectorAll("tr");
    var before = null;
    for (var i = 0; i < trs.length; i++) {
      var ts = new Date(trs[i].querySelector("time").getAttribute("datetime")).getTime();
      if (ts <= r.ts_ms) { before = trs[i]; break; }
    }
    if (!before && trs.length >= pageRows) return; // older than the whole page
    tbody.insertBefore(tr, before);
    while (tbody.rows.length > pageRows) tbody.deleteRow(tbody.rows.length - 1);
    var empty = document.querySelector(".table-panel .empty");
    if (empty) empty.hidden = true;
  }

  // --- live updates -------------------------------------------------------------------------
  function setLive(state, text) { live.dataset.state = state; live.querySelector(".live-text").textContent = text; }
  function resync() {
    fetch("api/sensors").then(function (r) { return r.json(); }).then(function (j) {
      (j.sensors || []).forEach(function (s) {
        updateCard({ sensor: s.sensor, seq: s.seq, ts: s.ts, ts_ms: Date.parse(s.ts), temperature: s.temperature, humidity: s.humidity });
      });
    }).catch(function () {});
    loadChart();
  }
  function connect() {
    if (!window.EventSource) return;
    // Resume from the event the server rendered this page at: nothing is lost in between.
    var es = new EventSource("events" + (body.dataset.eventId ? "?after=" + encodeURIComponent(body.dataset.eventId) : ""));
    es.onopen = function () { setLive("on", "live"); };
    es.onerror = function () { setLive("wait", "reconnecting"); };
    es.onmessage = function (ev) {
      var r;
      try { r = JSON.parse(ev.data); } catch (e) { return; }
      updateCard(r);
      appendToChart(r);
      prependRow(r);
    };
    es.addEventListener("resync", resync);
    // A publisher stopped sending heartbeats ("silent") or started again ("back").
    es.addEventListener("publisher", function (ev) {
      var p;
      try { p = JSON.parse(ev.data); } catch (e) { return; }
      (p.sensors || []).forEach(function (sensor) {
        var card = findCard(sensor);
        if (!card) return;
        if (p.state === "silent") card.dataset.publisher = "silent";
        else delete card.dataset.publisher;
      });
      tick();
    });
  }

  localizeTable();
  // Chart the sensor that reported last: the one most worth watching.
  var newest = null;
  Array.prototype.forEach.call(cardsEl.querySelectorAll(".card"), function (c) {
    if (!newest || Number(c.dataset.ts) > Number(newest.dataset.ts)) newest = c;
  });
  note.textContent = "";
  var wanted = rangeFromUrl();
  var known = wanted !== null && Array.prototype.some.call(sensorSelect.options, function (o) { return o.value === wanted; });
  if (chartState.range === "custom") {
    document.getElementById("range-from").value = toLocalInput(chartState.from);
    document.getElementById("range-to").value = toLocalInput(chartState.to);
    customForm.hidden = false;
  }
  selectSensor(known ? wanted : newest ? newest.dataset.sensor : "");
  tick();
  setInterval(tick, 1000);
  // Relative ranges slide with time; reload them now and then so old buckets fall off.
  setInterval(function () { if (chartState.range !== "custom") loadChart(); }, 60000);
  connect();
}());
