/* 大屏: fetches the wall's figures (JSON) every data-refresh seconds and redraws; never reloads the page.
 * Served from this origin under a CSP of script-src 'self'; uses the vendored Apache ECharts. */
(function () {
  "use strict";

  var body = document.body;
  var source = body.getAttribute("data-source");
  var refreshSeconds = Math.max(2, parseInt(body.getAttribute("data-refresh"), 10) || 60);
  var kiosk = body.getAttribute("data-kiosk") === "yes";
  var TZ = "Asia/Shanghai";
  var COLORS = ["#36c5f0", "#3ddc97", "#ffd166", "#ff8c5a", "#b88cff", "#5b8cff", "#ff5d6c"];
  var TEXT = "#e8eefc", MUTED = "#8fa3c8", GRID = "rgba(143,163,200,0.18)";
  var charts = {};
  var loads = 0;

  // ------------------------------------------------------------ number formats (Chinese conventions)
  function yuan(v) {
    if (v === null || v === undefined || isNaN(v)) { return "—"; }
    var a = Math.abs(v);
    if (a >= 1e8) { return "¥" + (v / 1e8).toFixed(2) + "亿"; }
    if (a >= 1e4) { return "¥" + (v / 1e4).toFixed(a >= 1e6 ? 0 : 1) + "万"; }
    return "¥" + Math.round(v).toLocaleString("zh-CN");
  }
  function wan(v) { return v === null || v === undefined ? 0 : Math.round(v / 100) / 100; }
  function count(v) { return v === null || v === undefined ? "—" : Number(v).toLocaleString("zh-CN"); }
  function pct(part, whole) { return whole > 0 && part !== null ? part / whole : null; }
  function pctText(p) { return p === null ? "—" : Math.round(p * 100) + "%"; }
  function days(d) {
    if (d === null || d === undefined) { return "—"; }
    if (d >= 10) { return Math.round(d) + " 天"; }
    return d >= 1 ? d.toFixed(1) + " 天" : Math.round(d * 24) + " 小时";
  }
  function minutes(m) {
    if (m === null || m === undefined) { return "无数据"; }
    if (m < 1) { return "不到 1 分钟"; }
    if (m < 120) { return Math.round(m) + " 分钟"; }
    if (m < 48 * 60) { return (m / 60).toFixed(1) + " 小时"; }
    return (m / 1440).toFixed(1) + " 天";
  }
  var timeFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  var dateFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, year: "numeric", month: "long", day: "numeric", weekday: "long" });
  var shortFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
  var dayFmt = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" });
  var hmFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, hour: "2-digit", minute: "2-digit", hour12: false });
  function when(iso, today) {  // "18:17" today, "12/6 18:17" before
    var t = new Date(iso);
    return dayFmt.format(t) === today ? hmFmt.format(t) : shortFmt.format(t);
  }
  function clock() {
    var now = new Date();
    text("#wb-time", timeFmt.format(now));
    text("#wb-date", dateFmt.format(now));
  }

  // ------------------------------------------------------------ DOM helpers
  function text(selector, value) {
    var el = document.querySelector(selector);
    if (el) { el.textContent = value; }
  }
  function field(name, value) {
    var els = document.querySelectorAll('[data-f="' + name + '"]');
    for (var i = 0; i < els.length; i++) { els[i].textContent = value; }
  }
  function bar(name, p) {
    var el = document.querySelector('[data-bar="' + name + '"]');
    if (!el) { return; }
    el.style.width = (p === null ? 0 : Math.min(100, p * 100)) + "%";
    el.className = p !== null && p >= 1 ? "over" : "";
  }
  function status(kind, message) {
    var dot = document.getElementById("wb-dot");
    dot.className = "dot " + kind;
    text("#wb-status", message);
  }
  function chart(id) {
    if (!charts[id]) {
      var el = document.getElementById(id);
      charts[id] = window.echarts.init(el, null, { renderer: "canvas" });
    }
    return charts[id];
  }

  // ------------------------------------------------------------ panels
  function kpis(d) {
    var s = d.sales;
    field("won_today", yuan(s.won_amount_today));
    field("won_month", yuan(s.won_amount_month));
    field("target_today", yuan(s.target_today));
    field("target_month", yuan(s.target_month));
    var pt = pct(s.won_amount_today, s.target_today), pm = pct(s.won_amount_month, s.target_month);
    field("pct_today", pctText(pt));
    field("pct_month", pctText(pm));
    bar("today", pt);
    bar("month", pm);
    field("won_count_today", count(s.won_count_today));
    field("won_count_month", count(s.won_count_month));
    field("month", d.month);
    field("new_today", count(s.new_deals_today));
    field("new_month", count(s.new_deals_month));
    var pending = 0, old = 0, oldest = null;
    d.approvals.forEach(function (a) {
      pending += a.pending; old += a.pending_old;
      if (a.oldest_days !== null && (oldest === null || a.oldest_days > oldest)) { oldest = a.oldest_days; }
    });
    field("pending", count(pending));
    field("pending_old", count(old));
    field("pending_oldest", days(oldest));
    var h = d.health;
    field("health", h.score === null ? "—" : h.score.toFixed(1));
    var scores = h.trend.filter(function (r) { return r.score !== null; });
    var delta = scores.length >= 2 ? scores[scores.length - 1].score - scores[Math.max(0, scores.length - 8)].score : null;
    field("health_delta", delta === null ? "" : (delta >= 0 ? "较7天前 +" : "较7天前 ") + delta.toFixed(1));
  }

  // Tooltips for a mouse (a desk browser); drawn on the canvas (richText), so no inline HTML meets the CSP.
  function tip(trigger, formatter) {
    var t = { show: true, trigger: trigger, renderMode: "richText", backgroundColor: "#1f3560", borderWidth: 0,
      textStyle: { color: TEXT, fontSize: 18 }, axisPointer: { type: "shadow" } };
    if (formatter) { t.formatter = formatter; }
    return t;
  }

  function axisStyle(extra) {
    var base = { axisLabel: { color: MUTED, fontSize: 18 }, axisLine: { lineStyle: { color: GRID } },
      splitLine: { lineStyle: { color: GRID } }, axisTick: { show: false } };
    for (var k in extra) { if (Object.prototype.hasOwnProperty.call(extra, k)) { base[k] = extra[k]; } }
    return base;
  }

  function funnel(d) {
    var open = d.funnel.filter(function (r) { return r.open && r.code; });
    chart("chart-funnel").setOption({
      animationDuration: 600, color: COLORS,
      tooltip: tip("item", function (p) { return p.name + "\n" + p.data.deals + " 个 · " + yuan(p.data.amount); }),
      series: [{
        type: "funnel", sort: "none", left: 0, width: "42%", top: 6, bottom: 6, minSize: "30%", gap: 5,
        label: { show: true, position: "right", distance: 14,
          formatter: function (p) { return "{n|" + p.name + "}  {v|" + p.data.deals + " 个 · " + yuan(p.data.amount) + "}"; },
          rich: { n: { color: TEXT, fontSize: 21, fontWeight: 600 }, v: { color: MUTED, fontSize: 20 } } },
        labelLine: { show: false },
        itemStyle: { borderWidth: 0 },
        data: open.map(function (r, i) {
          return { name: r.stage, value: open.length - i, deals: r.deals, amount: r.amount };
        })
      }]
    }, true);
  }

  function trend(d) {
    var rows = d.trend;
    chart("chart-trend").setOption({
      animationDuration: 600,
      grid: { left: 70, right: 56, top: 24, bottom: 36 },
      legend: { show: false }, tooltip: tip("axis"),
      xAxis: axisStyle({ type: "category", data: rows.map(function (r) { return r.day.slice(5).replace("-", "/"); }),
        axisLabel: { color: MUTED, fontSize: 16, interval: 4 } }),
      yAxis: [axisStyle({ type: "value", name: "", axisLabel: { color: MUTED, fontSize: 18 } }),
        axisStyle({ type: "value", splitLine: { show: false }, minInterval: 1, axisLabel: { color: MUTED, fontSize: 18 } })],
      series: [
        { type: "bar", name: "赢单金额（万元）", data: rows.map(function (r) { return wan(r.won_amount); }),
          itemStyle: { color: "#36c5f0", borderRadius: [4, 4, 0, 0] }, barMaxWidth: 26 },
        { type: "line", name: "新增商机", yAxisIndex: 1, data: rows.map(function (r) { return r.new_deals; }),
          smooth: true, smoothMonotone: "x", symbol: "none", lineStyle: { width: 4, color: "#ffd166" } }
      ]
    }, true);
  }

  function hbar(id, names, values, color, labelOf, labelWidth) {
    chart(id).setOption({
      animationDuration: 600, tooltip: tip("item"),
      grid: { left: 12, right: 110, top: 4, bottom: 4, containLabel: true },
      xAxis: { type: "value", show: false },
      yAxis: { type: "category", inverse: true, data: names, axisLine: { show: false }, axisTick: { show: false },
        axisLabel: { color: TEXT, fontSize: 20, width: labelWidth, overflow: "truncate" } },
      series: [{ type: "bar", data: values, barMaxWidth: 24, barCategoryGap: "30%",
        itemStyle: { color: color, borderRadius: [0, 5, 5, 0] },
        label: { show: true, position: "right", color: TEXT, fontSize: 20, formatter: labelOf } }]
    }, true);
  }

  function rankings(d) {
    var top = d.top_customers.slice(0, 7);
    hbar("chart-customers", top.map(function (r) { return r.customer; }), top.map(function (r) { return wan(r.won_amount); }),
      "#3ddc97", function (p) { return p.value.toFixed(1); }, 262);
    var reg = d.regions.slice(0, 7);
    hbar("chart-regions", reg.map(function (r) { return r.city; }), reg.map(function (r) { return wan(r.won_amount); }),
      "#5b8cff", function (p) { return p.value.toFixed(1); }, 210);
  }

  function approvals(d) {
    var rows = d.approvals;
    chart("chart-approvals").setOption({
      animationDuration: 600, tooltip: tip("axis"),
      legend: { top: 0, right: 0, textStyle: { color: MUTED, fontSize: 18 }, itemWidth: 18, itemHeight: 12 },
      grid: { left: 12, right: 60, top: 34, bottom: 4, containLabel: true },
      xAxis: { type: "value", show: false },
      yAxis: { type: "category", inverse: true, data: rows.map(function (r) { return r.form; }), axisLine: { show: false },
        axisTick: { show: false }, axisLabel: { color: TEXT, fontSize: 20 } },
      series: [
        { type: "bar", name: "审批中", data: rows.map(function (r) { return r.pending; }), barMaxWidth: 16,
          itemStyle: { color: "#36c5f0", borderRadius: [0, 4, 4, 0] },
          label: { show: true, position: "right", color: TEXT, fontSize: 18 } },
        { type: "bar", name: "超过3天", data: rows.map(function (r) { return r.pending_old; }), barMaxWidth: 16,
          itemStyle: { color: "#ff8c5a", borderRadius: [0, 4, 4, 0] },
          label: { show: true, position: "right", color: "#ffb08a", fontSize: 18 } }
      ]
    }, true);
  }

  function health(d) {
    var rows = d.health.trend;
    chart("chart-health").setOption({
      animation: false, grid: { left: 2, right: 2, top: 6, bottom: 2 },
      xAxis: { type: "category", show: false, data: rows.map(function (r) { return r.day; }) },
      yAxis: { type: "value", show: false, min: function (v) { return Math.max(0, Math.floor(v.min - 5)); }, max: 100 },
      series: [{ type: "line", data: rows.map(function (r) { return r.score; }), connectNulls: true, symbol: "none",
        lineStyle: { width: 3, color: "#3ddc97" }, areaStyle: { color: "rgba(61,220,151,0.18)" } }]
    }, true);
  }

  function sync(d) {
    var list = document.getElementById("sync-list");
    while (list.firstChild) { list.removeChild(list.firstChild); }
    d.sync.directions.forEach(function (r) {
      var row = document.createElement("div");
      var state = r.last_run_status === "failed" ? "bad" : (r.lag_minutes === null || r.lag_minutes > 60 ? "warn" : "ok");
      row.className = "sync-row " + state;
      var name = document.createElement("span"); name.className = "name"; name.textContent = r.label;
      var lag = document.createElement("span"); lag.className = "lag"; lag.textContent = "滞后 " + minutes(r.lag_minutes);
      var detail = document.createElement("span"); detail.className = "detail";
      var runState = { success: "成功", failed: "失败", running: "运行中" }[r.last_run_status] || "";
      var last = r.last_run_at ? "最近 " + when(r.last_run_at, d.today) + " " + runState : "尚未运行";
      detail.textContent = last + " · 24小时内 " + r.runs_24h + " 次，失败 " + r.failed_24h;
      row.appendChild(name); row.appendChild(lag); row.appendChild(detail);
      list.appendChild(row);
    });
    var q = document.querySelector('[data-f="quarantine"]');
    q.textContent = count(d.sync.quarantine_open);
    q.className = d.sync.quarantine_open ? "" : "zero";
    field("quarantine_reasons", d.sync.quarantine_reasons.map(function (r) { return r.reason + " " + r.open; }).join(" · "));
  }

  function draw(d) {
    kpis(d);
    funnel(d);
    trend(d);
    rankings(d);
    approvals(d);
    health(d);
    sync(d);
  }

  // ------------------------------------------------------------ refresh loop
  function load() {
    fetch(source, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) { var e = new Error("HTTP " + r.status); e.status = r.status; throw e; }
        return r.json();
      })
      .then(function (d) {
        draw(d);
        loads += 1;
        body.setAttribute("data-loads", String(loads));
        body.setAttribute("data-generated", d.generated_at);
        status("ok", "数据更新于 " + timeFmt.format(new Date(d.generated_at)) + " · 每 " + refreshSeconds + " 秒刷新");
        text("#wb-updated", "数据日期 " + d.today + " · " + (d.hidden_panels.length ? "部分面板按权限不显示" : "汇总口径同经营日报"));
      })
      .catch(function (e) {
        if (e.status === 401 || e.status === 403) {
          status("bad", kiosk ? "大屏链接已失效，请联系管理员生成新链接" : "登录已过期，请重新登录 Airflow");
        } else {
          status("bad", "数据暂不可用（" + (e.status ? "HTTP " + e.status : "网络中断") + "），显示的是上次的数据");
        }
      });
  }

  // ------------------------------------------------------------ fit the 1920×1080 stage to the screen
  function fit() {
    var stage = document.getElementById("wb-stage");
    var scale = Math.min(window.innerWidth / 1920, window.innerHeight / 1080);
    var dx = (window.innerWidth - 1920 * scale) / 2, dy = (window.innerHeight - 1080 * scale) / 2;
    stage.style.transform = scale === 1 ? "" : "translate(" + dx + "px," + dy + "px) scale(" + scale + ")";
  }

  function start() {
    fit();
    clock();
    setInterval(clock, 1000);
    load();
    setInterval(load, refreshSeconds * 1000);
    window.addEventListener("resize", function () {
      fit();
      for (var id in charts) { if (Object.prototype.hasOwnProperty.call(charts, id)) { charts[id].resize(); } }
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
}());
