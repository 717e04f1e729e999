// glassbox console: the page script. No framework, no build step.
//
// Every piece of data (labels, annotations, log messages, payloads, names) reaches
// the page through textContent or createElement/setAttribute, never innerHTML; links
// built from data are kept only when they are http(s) or same-site paths.
"use strict";

(function () {
  const body = document.body;
  const content = document.getElementById("content");
  const titleEl = document.getElementById("title");
  const page = body.dataset.page;

  // -- DOM helpers ----------------------------------------------------------------------

  function safeHref(url) {
    if (typeof url !== "string" || url === "") return null;
    if (url.startsWith("/") && !url.startsWith("//")) return url;
    try {
      const parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = String(value);
        else if (key === "href") {
          const safe = safeHref(value);
          if (safe) node.setAttribute("href", safe);
        } else if (key.startsWith("on") && typeof value === "function") {
          node.addEventListener(key.slice(2), value);
        } else if (key === "dataset") Object.assign(node.dataset, value);
        else if (!key.startsWith("on")) node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    add(node, children);
    return node;
  }

  function add(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function clear(node, ...children) {
    node.replaceChildren();
    return add(node, children);
  }

  function badge(text, kind) {
    return h("span", { class: "badge " + String(kind || text || "").toLowerCase() }, text);
  }

  function chip(text) {
    return h("span", { class: "chip" }, text);
  }

  function labelChips(labels, skip) {
    return Object.keys(labels || {})
      .filter((k) => !(skip || []).includes(k))
      .sort()
      .map((k) => chip(k + "=" + labels[k]));
  }

  function kv(pairs) {
    const dl = h("dl", { class: "kv" });
    for (const [k, v] of pairs) {
      if (v === null || v === undefined || v === "") continue;
      dl.append(h("dt", null, k), h("dd", null, v instanceof Node ? v : String(v)));
    }
    return dl;
  }

  function banner(text, isError) {
    return h("div", { class: "banner" + (isError ? " error" : ""), role: "status" }, text);
  }

  function errorsBanner(errors) {
    if (!errors || !errors.length) return null;
    return banner(errors.join("\n"), true);
  }

  function table(headers, rows) {
    return h(
      "table",
      null,
      h("thead", null, h("tr", null, headers.map((x) => h("th", null, x)))),
      h("tbody", null, rows),
    );
  }

  function enc(value) {
    return encodeURIComponent(String(value));
  }

  // -- API ------------------------------------------------------------------------------

  async function api(path, params) {
    const url = new URL(path, location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(key, v));
      else if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
    }
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      throw new Error((data && data.error) || response.status + " " + response.statusText);
    }
    return data;
  }

  // -- formatting -----------------------------------------------------------------------

  function trim(text) {
    return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
  }

  function num(value, decimals) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    if (decimals !== null && decimals !== undefined) return value.toFixed(decimals);
    const abs = Math.abs(value);
    if (abs === 0) return "0";
    if (abs >= 100) return trim(value.toFixed(0));
    if (abs >= 10) return trim(value.toFixed(1));
    if (abs >= 1) return trim(value.toFixed(2));
    return trim(value.toPrecision(3));
  }

  function scaled(value, base, suffixes, decimals) {
    let i = 0;
    let v = value;
    while (Math.abs(v) >= base && i < suffixes.length - 1) {
      v /= base;
      i += 1;
    }
    return num(v, decimals) + suffixes[i];
  }

  function seconds(value, decimals) {
    const abs = Math.abs(value);
    if (abs === 0) return "0 s";
    if (abs < 1e-6) return num(value * 1e9, decimals) + " ns";
    if (abs < 1e-3) return num(value * 1e6, decimals) + " µs";
    if (abs < 1) return num(value * 1e3, decimals) + " ms";
    if (abs < 60) return num(value, decimals) + " s";
    if (abs < 3600) return num(value / 60, decimals) + " min";
    if (abs < 86400) return num(value / 3600, decimals) + " h";
    return num(value / 86400, decimals) + " day";
  }

  // Grafana unit ids the generated dashboards use (and a few neighbours).
  function fmt(unit, value, decimals) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    switch (unit) {
      case "s":
        return seconds(value, decimals);
      case "ms":
        return seconds(value / 1000, decimals);
      case "percentunit":
        return num(value * 100, decimals) + "%";
      case "percent":
        return num(value, decimals) + "%";
      case "reqps":
        return scaled(value, 1000, ["", "K", "M", "B"], decimals) + " req/s";
      case "ops":
        return scaled(value, 1000, ["", "K", "M", "B"], decimals) + " ops/s";
      case "bytes":
        return scaled(value, 1024, [" B", " KiB", " MiB", " GiB", " TiB", " PiB"], decimals);
      case "decbytes":
        return scaled(value, 1000, [" B", " kB", " MB", " GB", " TB", " PB"], decimals);
      case "none":
        return num(value, decimals);
      case "short":
      default:
        return scaled(value, 1000, ["", " K", " Mil", " Bil", " Tri"], decimals);
    }
  }

  function fmtTime(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
    const d = new Date(ms);
    const now = new Date();
    const time = d.toLocaleTimeString([], { hour12: false });
    return d.toDateString() === now.toDateString() ? time : d.toLocaleDateString() + " " + time;
  }

  function fmtIso(iso) {
    return iso ? fmtTime(Date.parse(iso)) : "";
  }

  function ago(iso) {
    const t = Date.parse(iso || "");
    if (!Number.isFinite(t)) return "";
    const s = Math.max(0, (Date.now() - t) / 1000);
    if (s < 60) return Math.round(s) + "s ago";
    if (s < 3600) return Math.round(s / 60) + "m ago";
    if (s < 86400) return Math.round(s / 3600) + "h ago";
    return Math.round(s / 86400) + "d ago";
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
    if (ms === 0) return "0 ms";
    if (ms < 1) return Math.round(ms * 1000) + " µs";
    if (ms < 1000) return trim(ms.toFixed(ms < 10 ? 2 : 1)) + " ms";
    return trim((ms / 1000).toFixed(2)) + " s";
  }

  function queryState() {
    return new URLSearchParams(location.search);
  }

  function setQuery(params) {
    const search = params.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : "") + location.hash);
  }

  function every(ms, fn) {
    let busy = false;
    const tick = async () => {
      if (busy || document.visibilityState === "hidden") return;
      busy = true;
      try {
        await fn();
      } finally {
        busy = false;
      }
    };
    return setInterval(tick, ms);
  }

  // -- Overview -------------------------------------------------------------------------

  function healthName(value) {
    if (value === null || value === undefined) return "unknown";
    if (value >= 1) return "pass";
    if (value > 0) return "warn";
    return "fail";
  }

  function budgetMeter(remaining) {
    const ratio = Math.max(0, Math.min(1, remaining === null ? 0 : remaining));
    const cls = remaining === null ? "meter" : remaining < 0.1 ? "meter bad" : remaining < 0.5 ? "meter warn" : "meter";
    const bar = h("div");
    bar.style.width = (ratio * 100).toFixed(1) + "%";
    return h("span", { class: cls }, bar);
  }

  async function overview() {
    const data = await api("/api/overview");
    const services = data.services || [];
    const up = services.reduce((n, s) => n + s.up, 0);
    const total = services.reduce((n, s) => n + s.total, 0);
    const failing = (data.health || []).filter((c) => c.status !== null && c.status < 1).length;
    const burnt = (data.slos || []).filter((s) => s.remaining !== null && s.remaining < 0).length;
    const cards = h(
      "div",
      { class: "cards" },
      h("a", { class: "card" + (data.alerts.firing ? " bad" : " ok"), href: "/alerts", id: "card-firing" },
        h("div", { class: "label" }, "Firing alerts"), h("div", { class: "big" }, String(data.alerts.firing))),
      h("a", { class: "card" + (data.alerts.pending ? " warn" : ""), href: "/alerts", id: "card-pending" },
        h("div", { class: "label" }, "Pending alerts"), h("div", { class: "big" }, String(data.alerts.pending))),
      h("div", { class: "card" + (up < total ? " bad" : " ok"), id: "card-targets" },
        h("div", { class: "label" }, "Targets up"), h("div", { class: "big" }, up + " / " + total)),
      h("div", { class: "card" + (burnt ? " bad" : ""), id: "card-slos" },
        h("div", { class: "label" }, "SLOs out of budget"), h("div", { class: "big" }, burnt + " / " + (data.slos || []).length)),
      h("div", { class: "card" + (failing ? " bad" : " ok"), id: "card-health" },
        h("div", { class: "label" }, "Failing health checks"), h("div", { class: "big" }, String(failing))),
    );

    const serviceRows = services.map((s) =>
      h(
        "tr",
        { dataset: { service: s.name } },
        h("td", null, h("strong", null, s.name), " ", h("span", { class: "muted small" }, s.type || s.kind)),
        h("td", null, badge(s.up + "/" + s.total, s.total === 0 ? "unknown" : s.up === s.total ? "up" : "down")),
        h(
          "td",
          null,
          s.targets.length
            ? s.targets.map((t) =>
                h("div", { class: "target" }, badge(t.health, t.health), " ", h("span", { class: "mono" }, t.instance),
                  t.last_error ? h("div", { class: "error-text small" }, t.last_error) : null))
            : h("span", { class: "muted" }, (s.configured || []).length ? "not scraped yet: " + s.configured.join(", ") : "no targets"),
        ),
      ),
    );

    const alertRows = (data.alerts.top || []).map((a) =>
      h(
        "tr",
        { class: "clickable", onclick: () => { location.href = "/alerts#" + enc(a.id); } },
        h("td", null, badge(a.state, a.state)),
        h("td", null, a.severity ? badge(a.severity, a.severity) : ""),
        h("td", null, h("a", { href: "/alerts#" + enc(a.id) }, a.name)),
        h("td", null, a.summary),
        h("td", null, labelChips(a.labels, ["alertname", "severity"])),
      ),
    );

    const sloRows = (data.slos || []).map((s) =>
      h(
        "tr",
        null,
        h("td", null, s.service),
        h("td", null, s.slo),
        h("td", null, s.objective === null ? "" : fmt("percentunit", s.objective, 2)),
        h("td", null, budgetMeter(s.remaining), s.remaining === null ? "no data" : fmt("percentunit", s.remaining, 1)),
      ),
    );

    const healthRows = (data.health || []).map((c) =>
      h("tr", null, h("td", null, c.service), h("td", { class: "mono" }, c.check), h("td", null, badge(healthName(c.status)))),
    );

    clear(
      content,
      errorsBanner(data.errors),
      cards,
      h("div", { class: "section", id: "services" }, h("h2", null, "Services and targets"),
        serviceRows.length ? table(["Service", "Up", "Targets"], serviceRows) : h("p", { class: "empty" }, "No targets.")),
      h("div", { class: "section", id: "alerts" }, h("h2", null, "Alerts"),
        alertRows.length ? table(["State", "Severity", "Alert", "Summary", "Labels"], alertRows) : h("p", { class: "empty" }, "Nothing firing or pending.")),
      h("div", { class: "section", id: "slos" }, h("h2", null, "SLO error budgets"),
        sloRows.length ? table(["Service", "SLO", "Objective", "Budget remaining"], sloRows) : h("p", { class: "empty" }, "No SLOs recorded yet (slo:error_budget_remaining:ratio).")),
      h("div", { class: "section", id: "health" }, h("h2", null, "Dependency health"),
        healthRows.length ? table(["Service", "Check", "Status"], healthRows) : h("p", { class: "empty" }, "No health checks reported (health_check_status).")),
    );
    body.dataset.ready = "1";
  }

  // -- Dashboards list --------------------------------------------------------------------

  function uplotMissingBanner() {
    return banner(
      "Charts need uPlot, which is not installed here. Run scripts/console-assets.sh " +
        "(it installs the npm package uplot into .cache/console/node_modules), then reload this page.",
      false,
    );
  }

  async function dashboards() {
    const data = await api("/api/dashboards");
    const rows = data.dashboards.map((d) =>
      h(
        "tr",
        null,
        h("td", null, h("a", { href: "/dashboards/" + enc(d.uid) }, d.title)),
        h("td", null, d.tags.map(chip)),
        h("td", { class: "mono muted" }, d.file),
      ),
    );
    clear(
      content,
      data.uplot ? null : uplotMissingBanner(),
      rows.length
        ? h("div", { class: "section" }, table(["Dashboard", "Tags", "File"], rows))
        : h("p", { class: "empty" }, "No dashboards in " + data.directory + "."),
    );
    body.dataset.ready = "1";
  }

  // -- One dashboard ----------------------------------------------------------------------

  const PALETTE = [
    "#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
    "#508642", "#cca300", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477",
  ];
  const NAMED = {
    green: "#73bf69", red: "#f2495c", orange: "#ff9830", yellow: "#fade2a", blue: "#5794f2",
    purple: "#b877d9", "dark-red": "#c4162a", "semi-dark-red": "#e02f44", "dark-orange": "#fa6400",
    "dark-yellow": "#e0b400", "dark-green": "#37872d", "semi-dark-green": "#56a64b",
    "semi-dark-orange": "#ff7383", "dark-blue": "#1f60c4", text: "#1c2128",
  };

  function colour(name) {
    return NAMED[name] || name || "#73bf69";
  }

  function withAlpha(hex, alpha) {
    const m = /^#([0-9a-f]{6})$/i.exec(hex);
    if (!m) return hex;
    const n = parseInt(m[1], 16);
    return "rgba(" + ((n >> 16) & 255) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function thresholdColour(panel, value) {
    let result = null;
    for (const step of panel.thresholds || []) {
      if (step.value === null || step.value === undefined || value >= step.value) result = step.color;
    }
    return result ? colour(result) : null;
  }

  function lastValue(values) {
    for (let i = values.length - 1; i >= 0; i -= 1) {
      if (values[i] !== null && values[i] !== undefined) return values[i];
    }
    return null;
  }

  function thresholdsPlugin(panel) {
    const steps = (panel.thresholds || []).filter((s) => s.value !== null && s.value !== undefined);
    return {
      hooks: {
        draw: [
          (u) => {
            if (!panel.show_thresholds || !steps.length) return;
            const ctx = u.ctx;
            const { left, top, width, height } = u.bbox;
            ctx.save();
            ctx.setLineDash([6, 4]);
            ctx.lineWidth = 1;
            for (const step of steps) {
              const y = u.valToPos(step.value, "y", true);
              if (y < top || y > top + height) continue;
              ctx.strokeStyle = colour(step.color);
              ctx.beginPath();
              ctx.moveTo(left, y);
              ctx.lineTo(left + width, y);
              ctx.stroke();
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  async function dashboard() {
    const uid = body.dataset.uid;
    const spec = await api("/api/dashboards/" + enc(uid));
    const info = window.__glassbox || (window.__glassbox = {});
    if (info.specMs === undefined) info.specMs = performance.now();
    const params = queryState();
    const state = {
      uid,
      spec,
      range: params.get("range") || spec.range || "6h",
      refresh: params.has("refresh") ? params.get("refresh") : spec.refresh || "",
      selected: {},
      options: {},
      panels: [],
      cycle: 0,
      timer: null,
      syncKey: "glassbox-" + uid,
      hasUplot: typeof window.uPlot === "function",
    };
    for (const v of spec.variables) {
      const chosen = params.getAll("var-" + v.name);
      state.selected[v.name] = chosen.length ? chosen : v.current.length ? v.current : v.include_all ? ["$__all"] : [];
      state.options[v.name] = v.options || [];
    }

    const syncUrl = () => {
      const q = new URLSearchParams();
      q.set("range", state.range);
      q.set("refresh", state.refresh || "off");
      for (const v of spec.variables) for (const s of state.selected[v.name]) q.append("var-" + v.name, s);
      setQuery(q);
    };

    const varParams = () => {
      const out = {};
      for (const v of spec.variables) out["var-" + v.name] = state.selected[v.name];
      return out;
    };

    // toolbar: variables, range, refresh
    const varControls = h("div", { class: "toolbar", id: "variables" });
    const rangeSelect = h("select", { id: "range", "aria-label": "Time range" });
    const ranges = spec.ranges.includes(state.range) ? spec.ranges : [...spec.ranges, state.range];
    for (const r of ranges) rangeSelect.append(h("option", { value: r, selected: r === state.range }, "Last " + r));
    rangeSelect.addEventListener("change", () => {
      state.range = rangeSelect.value;
      syncUrl();
      loadVariables(0);
      loadAll();
    });
    const refreshSelect = h("select", { id: "refresh", "aria-label": "Auto refresh" });
    const refreshes = ["off", "10s", "30s", "1m", "5m"];
    if (state.refresh && !refreshes.includes(state.refresh)) refreshes.push(state.refresh);
    for (const r of refreshes) {
      refreshSelect.append(h("option", { value: r, selected: r === (state.refresh || "off") }, r === "off" ? "Auto refresh off" : "Every " + r));
    }
    refreshSelect.addEventListener("change", () => {
      state.refresh = refreshSelect.value === "off" ? "" : refreshSelect.value;
      syncUrl();
      schedule();
    });
    const reload = h("button", { type: "button", id: "reload", title: "Refresh now", onclick: () => loadAll() }, "↻ Refresh");
    const status = h("span", { class: "muted small", id: "status" });
    const toolbar = h("div", { class: "toolbar" }, varControls, h("span", { class: "spacer" }), status, rangeSelect, refreshSelect, reload);

    const variableViews = {};
    function renderVariable(v) {
      const summaryText = h("span");
      const options = h("div", { class: "options" });
      const details = h("details", { class: "var", dataset: { variable: v.name } },
        h("summary", null, h("span", { class: "name" }, v.label + ": "), summaryText), options);
      const update = () => {
        const sel = state.selected[v.name];
        summaryText.textContent = sel.includes("$__all") ? "All" : sel.length ? sel.join(" + ") : "None";
        const values = [...(v.include_all ? ["$__all"] : []), ...state.options[v.name]];
        for (const s of sel) if (!values.includes(s)) values.push(s);
        const inputs = values.map((value) => {
          const input = h("input", {
            type: v.multi ? "checkbox" : "radio",
            name: "var-" + v.name,
            value,
            checked: sel.includes(value),
          });
          input.addEventListener("change", () => choose(v, value, input.checked));
          return h("label", null, input, value === "$__all" ? "All" : value === "" ? "(empty)" : value);
        });
        clear(options, inputs.length ? inputs : h("span", { class: "muted small" }, "no values"));
      };
      variableViews[v.name] = update;
      update();
      return details;
    }

    function choose(v, value, checked) {
      let sel = state.selected[v.name].slice();
      if (!v.multi) sel = [value];
      else if (value === "$__all") sel = checked ? ["$__all"] : [];
      else {
        sel = sel.filter((s) => s !== "$__all");
        sel = checked ? [...sel, value] : sel.filter((s) => s !== value);
        if (!sel.length && v.include_all) sel = ["$__all"];
      }
      state.selected[v.name] = sel;
      variableViews[v.name]();
      syncUrl();
      loadVariables(spec.variables.indexOf(v) + 1);
      loadAll();
    }

    async function loadVariables(from) {
      for (const v of spec.variables.slice(from)) {
        if (v.type !== "query") continue;
        try {
          const data = await api("/api/dashboards/" + enc(uid) + "/variables/" + enc(v.name), { range: state.range, ...varParams() });
          state.options[v.name] = data.values;
        } catch (err) {
          state.options[v.name] = [];
          status.textContent = v.name + ": " + err.message;
        }
        variableViews[v.name]();
      }
    }

    for (const v of spec.variables) varControls.append(renderVariable(v));

    // rows and panels
    const rowsEl = h("div", { id: "rows" });
    for (const row of spec.rows) {
      const grid = h("div", { class: "grid" });
      const minY = Math.min(...row.panels.map((p) => p.grid.y), Infinity);
      const members = [];
      for (const panel of row.panels) {
        const titleNode = h("div", { class: "panel-title", title: panel.description || panel.title }, panel.title);
        const bodyNode = h("div", { class: "panel-body" });
        const card = h("section", { class: "panel", dataset: { panelId: String(panel.id), panelType: panel.type } }, titleNode, bodyNode);
        card.style.gridColumn = panel.grid.x + 1 + " / span " + Math.max(1, Math.min(24, panel.grid.w));
        card.style.gridRow = panel.grid.y - (Number.isFinite(minY) ? minY : 0) + 1 + " / span " + Math.max(2, panel.grid.h);
        grid.append(card);
        const view = { panel, card, body: bodyNode, chart: null, data: null, row: null };
        members.push(view);
        state.panels.push(view);
      }
      let rowEl;
      if (row.title) {
        rowEl = h("details", { class: "dash-row", open: !row.collapsed }, h("summary", null, row.title), grid);
        const rowState = { open: !row.collapsed };
        for (const m of members) m.row = rowState;
        // "toggle" also fires for the initial open attribute: load only on a real change
        rowEl.addEventListener("toggle", () => {
          const was = rowState.open;
          rowState.open = rowEl.open;
          if (rowEl.open && !was) members.forEach((m) => loadPanel(m));
        });
      } else {
        rowEl = h("div", { class: "dash-row" }, grid);
      }
      rowsEl.append(rowEl);
    }

    clear(content, state.hasUplot ? null : uplotMissingBanner(), toolbar, rowsEl);
    if (spec.description) titleEl.title = spec.description;

    function message(view, text, isError) {
      if (view.chart) {
        view.chart.destroy();
        view.chart = null;
      }
      clear(view.body, h("div", { class: "message" + (isError ? " error" : "") }, text));
    }

    function chartSize(view) {
      const width = Math.max(120, view.body.clientWidth - 4);
      const height = Math.max(60, view.body.clientHeight - 4);
      return { width, height };
    }

    function drawTimeseries(view) {
      const { panel, data } = view;
      if (!state.hasUplot) {
        drawStat(view, true);
        return;
      }
      const aligned = [data.timestamps, ...data.series.map((s) => s.values)];
      const names = data.series.map((s) => s.name).join("\u0000");
      if (view.chart && view.names === names) {
        view.chart.setData(aligned);
        return;
      }
      if (view.chart) view.chart.destroy();
      view.body.replaceChildren();
      const size = chartSize(view);
      const fill = Math.max(0, Math.min(100, Number(panel.fill_opacity) || 0)) / 100;
      const opts = {
        width: size.width,
        height: size.height,
        cursor: state.spec.shared_crosshair ? { sync: { key: state.syncKey } } : {},
        scales: {
          x: { time: true, range: () => [view.data.start, view.data.end] },
          y: {
            range: (u, min, max) => {
              let lo = panel.min !== null && panel.min !== undefined ? panel.min : min;
              let hi = panel.max !== null && panel.max !== undefined ? panel.max : max;
              if (lo === null || hi === null) return [0, 1];
              if (lo === hi) {
                lo = lo === 0 ? 0 : lo - Math.abs(lo) * 0.1;
                hi = hi === 0 ? 1 : hi + Math.abs(hi) * 0.1;
              }
              if (lo > 0 && (panel.min === null || panel.min === undefined)) lo = 0;
              return window.uPlot.rangeNum(lo, hi, 0.1, true);
            },
          },
        },
        axes: [
          { stroke: "#5b6470", grid: { stroke: "#eef0f3", width: 1 }, ticks: { stroke: "#eef0f3", width: 1 } },
          {
            stroke: "#5b6470",
            grid: { stroke: "#eef0f3", width: 1 },
            ticks: { stroke: "#eef0f3", width: 1 },
            size: 74,
            values: (u, splits) => splits.map((v) => fmt(panel.unit, v, null)),
          },
        ],
        series: [
          { value: (u, v) => (v === null ? "" : fmtTime(v * 1000)) },
          ...data.series.map((s, i) => {
            const c = PALETTE[i % PALETTE.length];
            return {
              label: s.name || "(no name)",
              stroke: c,
              fill: fill ? withAlpha(c, fill) : undefined,
              width: 1.5,
              points: { show: false },
              spanGaps: false,
              value: (u, v) => (v === null || v === undefined ? "–" : fmt(panel.unit, v, panel.decimals)),
            };
          }),
        ],
        legend: { show: true, live: true },
        plugins: [thresholdsPlugin(panel)],
      };
      view.chart = new window.uPlot(opts, aligned, view.body);
      view.names = names;
      // the legend sits below the canvas inside the panel: give the canvas what is left
      const legend = view.body.querySelector(".u-legend");
      const taken = legend ? legend.offsetHeight + 2 : 0;
      if (taken) view.chart.setSize({ width: size.width, height: Math.max(60, size.height - taken) });
    }

    function drawStat(view, fallback) {
      const { panel, data } = view;
      if (view.chart) {
        view.chart.destroy();
        view.chart = null;
      }
      const many = data.series.length > 4;
      const items = data.series.map((s) => {
        const value = lastValue(s.values);
        const valueEl = h("div", { class: "stat-value" }, fmt(panel.unit, value, panel.decimals));
        const c = fallback ? null : thresholdColour(panel, value);
        if (c && value !== null) valueEl.style.color = c;
        const parts = [valueEl];
        if (panel.type === "gauge" && value !== null) {
          const max = panel.max !== null && panel.max !== undefined ? panel.max : panel.unit === "percentunit" ? 1 : 100;
          const min = panel.min !== null && panel.min !== undefined ? panel.min : 0;
          const fillEl = h("div");
          fillEl.style.width = Math.max(0, Math.min(100, ((value - min) / (max - min || 1)) * 100)) + "%";
          if (c) fillEl.style.background = c;
          parts.push(h("div", { class: "gauge-bar" }, fillEl));
        }
        if (data.series.length > 1 || fallback) parts.push(h("div", { class: "stat-name" }, s.name));
        return h("div", { class: "stat" + (many ? " many" : "") }, parts);
      });
      view.names = null;
      clear(view.body, h("div", { class: "stat-wrap" }, items));
    }

    function drawTable(view) {
      const { panel, data } = view;
      const keys = [...new Set(data.series.flatMap((s) => Object.keys(s.labels)))].filter((k) => k !== "__name__").sort();
      const rows = data.series.map((s) =>
        h("tr", null, keys.map((k) => h("td", { class: "mono" }, s.labels[k] || "")), h("td", null, fmt(panel.unit, lastValue(s.values), panel.decimals))),
      );
      clear(view.body, h("div", { class: "table-wrap" }, table([...keys, "Value"], rows)));
    }

    function draw(view) {
      const { panel, data } = view;
      const failed = data.queries.filter((q) => q.error);
      if (!data.series.length) {
        message(view, failed.length ? failed.map((q) => q.ref_id + ": " + q.error).join("\n") : "No data", failed.length > 0);
        return;
      }
      if (panel.type === "timeseries" || panel.type === "graph") drawTimeseries(view);
      else if (panel.type === "table") drawTable(view);
      else drawStat(view, false);
    }

    async function loadPanel(view) {
      if (view.row && !view.row.open) return;
      if (!view.panel.targets.length) {
        message(view, "This panel has no Prometheus query.");
        return;
      }
      try {
        view.data = await api("/api/dashboards/" + enc(uid) + "/panels/" + enc(view.panel.id), {
          range: state.range,
          width: Math.round(view.body.clientWidth || 600),
          ...varParams(),
        });
        const arrived = performance.now();
        state.lastDataMs = arrived;
        draw(view);
        info.drawMs = (info.drawMs || 0) + (performance.now() - arrived);
      } catch (err) {
        view.data = null;
        message(view, err.message, true);
      }
    }

    async function loadAll() {
      const cycle = ++state.cycle;
      const started = performance.now();
      const visible = state.panels.filter((v) => !v.row || v.row.open);
      await Promise.all(visible.map(loadPanel));
      if (cycle !== state.cycle) return;
      const done = performance.now();
      status.textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
      info.dashboardReady = true;
      info.cycle = cycle;
      info.readyMs = done;
      info.loadMs = done - started;
      info.panels = visible.length;
      info.charts = state.panels.filter((v) => v.chart).length;
      if (cycle === 1) {
        info.firstRequestMs = started;
        info.firstDataMs = state.lastDataMs;
        info.firstReadyMs = done;
      }
      body.dataset.ready = String(cycle);
    }

    function schedule() {
      if (state.timer) clearInterval(state.timer);
      state.timer = null;
      const match = /^(\d+)(s|m|h)$/.exec(state.refresh || "");
      if (!match) return;
      const ms = Number(match[1]) * { s: 1000, m: 60000, h: 3600000 }[match[2]];
      state.timer = every(Math.max(5000, ms), loadAll);
    }

    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        for (const view of state.panels) {
          if (!view.chart) continue;
          const size = chartSize(view);
          const legend = view.body.querySelector(".u-legend");
          const taken = legend ? legend.offsetHeight + 2 : 0;
          view.chart.setSize({ width: size.width, height: Math.max(60, size.height - taken) });
        }
      }, 150);
    });

    syncUrl();
    schedule();
    // the panels need only the selection, not every variable's options: load those
    // after the first draw, so they do not compete with the panel queries
    await loadAll();
    await loadVariables(0);
    info.variablesMs = performance.now();
  }

  // -- Alerts -----------------------------------------------------------------------------

  function alertDetail(alert) {
    const links = [];
    if (alert.runbook_url) links.push(h("a", { href: alert.runbook_url, target: "_blank", rel: "noopener noreferrer", class: "runbook" }, "Runbook"));
    if (alert.generator_url) links.push(h("a", { href: alert.generator_url, target: "_blank", rel: "noopener noreferrer" }, "Source in Prometheus"));
    return h(
      "section",
      { class: "detail", id: "alert-detail", dataset: { alertId: alert.id } },
      h("h2", null, alert.name || "(no alertname)", " ", badge(alert.state, alert.state), " ", alert.severity ? badge(alert.severity, alert.severity) : null),
      alert.summary ? h("p", null, alert.summary) : null,
      links.length ? h("p", null, links.flatMap((l, i) => (i ? [" · ", l] : [l]))) : null,
      kv([
        ["since", alert.since ? fmtIso(alert.since) + " (" + ago(alert.since) + ")" : ""],
        ["source", alert.source],
        ["value", alert.value],
        ["receivers", (alert.receivers || []).join(", ")],
        ["silenced by", (alert.silenced_by || []).join(", ")],
        ["inhibited by", (alert.inhibited_by || []).join(", ")],
      ]),
      h("h3", null, "Labels"),
      kv(Object.keys(alert.labels).sort().map((k) => [k, alert.labels[k]])),
      h("h3", null, "Annotations"),
      Object.keys(alert.annotations).length
        ? kv(Object.keys(alert.annotations).sort().map((k) => [k, alert.annotations[k]]))
        : h("p", { class: "muted" }, "none"),
    );
  }

  async function alerts() {
    let selected = decodeURIComponent(location.hash.slice(1));
    const detailSlot = h("div", { id: "detail-slot" });
    const listSlot = h("div", { id: "alert-list" });
    const silenceSlot = h("div", { id: "silences" });
    clear(content, detailSlot, listSlot, silenceSlot);

    const render = async () => {
      const [data, silences] = await Promise.all([
        api("/api/alerts"),
        api("/api/silences").catch((err) => ({ error: err.message, silences: [] })),
      ]);
      const byId = new Map(data.alerts.map((a) => [a.id, a]));
      const show = (id) => {
        selected = id;
        history.replaceState(null, "", location.pathname + location.search + (id ? "#" + enc(id) : ""));
        const alert = byId.get(id);
        clear(detailSlot, alert ? alertDetail(alert) : null);
        for (const tr of listSlot.querySelectorAll("tr[data-alert-id]")) tr.classList.toggle("selected", tr.dataset.alertId === id);
        if (alert) detailSlot.scrollIntoView({ block: "nearest" });
      };
      const groups = [
        ["firing", "Firing"],
        ["pending", "Pending"],
        ["suppressed", "Silenced or inhibited"],
      ];
      const sections = groups.map(([state, title]) => {
        const list = data.alerts.filter((a) => a.state === state);
        const rows = list.map((a) =>
          h(
            "tr",
            { class: "clickable alert-row", dataset: { alertId: a.id, alertname: a.name }, onclick: () => show(a.id) },
            h("td", null, a.severity ? badge(a.severity, a.severity) : ""),
            h("td", null, h("strong", null, a.name)),
            h("td", null, a.summary),
            h("td", null, labelChips(a.labels, ["alertname", "severity"])),
            h("td", { class: "muted small" }, ago(a.since)),
          ),
        );
        return h("div", { class: "section", dataset: { state } }, h("h2", null, title + " (" + list.length + ")"),
          rows.length ? table(["Severity", "Alert", "Summary", "Labels", "Since"], rows) : h("p", { class: "empty" }, "None."));
      });
      clear(listSlot, errorsBanner(data.errors), sections);

      const silenceRows = silences.silences.map((s) =>
        h(
          "tr",
          { dataset: { silenceId: s.id } },
          h("td", null, badge(s.state, s.state)),
          h("td", null, s.matchers.map((m) => chip(m.name + (m.is_equal ? "" : "!") + (m.is_regex ? "=~" : "=") + m.value))),
          h("td", null, s.comment, s.created_by ? h("div", { class: "muted small" }, "by " + s.created_by) : null),
          h("td", { class: "small" }, fmtIso(s.starts_at)),
          h("td", { class: "small" }, fmtIso(s.ends_at)),
        ),
      );
      clear(silenceSlot, h("div", { class: "section" }, h("h2", null, "Silences (" + silences.silences.length + ")"),
        silences.error ? banner(silences.error, true) : null,
        silenceRows.length ? table(["State", "Matchers", "Comment", "Starts", "Ends"], silenceRows) : h("p", { class: "empty" }, "No silences.")));
      show(byId.has(selected) ? selected : "");
      body.dataset.ready = "1";
    };
    window.addEventListener("hashchange", () => {
      selected = decodeURIComponent(location.hash.slice(1));
      render().catch(fail);
    });
    await render();
    every(15000, () => render().catch(fail));
  }

  // -- Inbox ------------------------------------------------------------------------------

  async function inbox() {
    const params = queryState();
    let receiver = params.get("receiver") || "";
    const filterSlot = h("div", { class: "toolbar", id: "receivers" });
    const listSlot = h("div", { id: "deliveries" });
    const detailSlot = h("div", { id: "delivery-detail" });
    clear(content, filterSlot, detailSlot, listSlot);
    let selected = null;

    const render = async () => {
      const data = await api("/api/inbox", { receiver });
      if (!data.available) {
        clear(filterSlot);
        clear(listSlot, banner("The local inbox is not running (glassbox up --real-receivers sends notifications to the real services)."));
        body.dataset.ready = "1";
        return;
      }
      const buttons = [h("button", { type: "button", class: receiver ? "" : "primary", onclick: () => pick("") }, "All receivers")];
      for (const r of data.receivers) {
        buttons.push(h("button", { type: "button", class: receiver === r.name ? "primary" : "", dataset: { receiver: r.name }, onclick: () => pick(r.name) }, r.name + " (" + r.count + ")"));
      }
      clear(filterSlot, buttons);
      const rows = data.deliveries.map((d) =>
        h(
          "tr",
          { class: "clickable delivery-row" + (selected === d.id ? " selected" : ""), dataset: { deliveryId: String(d.id) }, onclick: () => open(d) },
          h("td", { class: "small" }, fmtIso(d.time)),
          h("td", null, d.receiver),
          h("td", null, chip(d.kind)),
          h("td", null, badge(d.status, d.status)),
          h("td", null, (d.alertnames || []).join(", ")),
          h("td", null, d.severity ? badge(d.severity, d.severity) : ""),
          h("td", null, d.title),
        ),
      );
      clear(listSlot, h("div", { class: "section" }, h("h2", null, (receiver ? receiver : "All receivers") + ": " + data.deliveries.length + " deliveries"),
        rows.length ? table(["Time", "Receiver", "Kind", "Status", "Alerts", "Severity", "Title"], rows) : h("p", { class: "empty" }, "Nothing delivered yet.")));
      body.dataset.ready = "1";
    };
    const open = (d) => {
      selected = d.id;
      for (const tr of listSlot.querySelectorAll("tr[data-delivery-id]")) tr.classList.toggle("selected", tr.dataset.deliveryId === String(d.id));
      clear(detailSlot, h("section", { class: "detail", id: "payload" },
        h("h2", null, d.receiver + " · " + d.kind + " · " + d.status),
        kv([["time", fmtIso(d.time)], ["alerts", (d.alertnames || []).join(", ")], ["title", d.title]]),
        h("pre", { class: "payload" }, JSON.stringify(d.payload, null, 2))));
    };
    const pick = (name) => {
      receiver = name;
      const q = queryState();
      if (name) q.set("receiver", name);
      else q.delete("receiver");
      setQuery(q);
      render().catch(fail);
    };
    await render();
    every(10000, () => render().catch(fail));
  }

  // -- Logs -------------------------------------------------------------------------------

  async function services() {
    try {
      return (await api("/api/services")).services;
    } catch (_) {
      return [];
    }
  }

  function selectOf(name, label, options, value) {
    const select = h("select", { name, "aria-label": label });
    for (const [v, text] of options) select.append(h("option", { value: v, selected: v === value }, text));
    return h("label", null, label, select);
  }

  const RANGE_OPTIONS = [["15m", "15m"], ["1h", "1h"], ["6h", "6h"], ["24h", "24h"], ["7d", "7d"], ["all", "all"]];

  async function logs() {
    const params = queryState();
    const names = await services();
    const form = h(
      "form",
      { class: "toolbar", id: "log-search" },
      selectOf("service", "Service", [["", "any"], ...names.map((n) => [n, n])], params.get("service") || ""),
      selectOf("level", "Level ≥", [["", "any"], ["debug", "debug"], ["info", "info"], ["warning", "warning"], ["error", "error"], ["critical", "critical"]], params.get("level") || ""),
      h("label", null, "Text", h("input", { name: "text", type: "search", value: params.get("text") || "", placeholder: "contains…" })),
      h("label", null, "Trace", h("input", { name: "trace_id", class: "mono", size: 34, value: params.get("trace_id") || "", placeholder: "trace id" })),
      selectOf("since", "Since", RANGE_OPTIONS, params.get("since") || "24h"),
      params.get("span_id") ? h("input", { type: "hidden", name: "span_id", value: params.get("span_id") }) : null,
      h("button", { type: "submit", class: "primary" }, "Search"),
    );
    const note = params.get("span_id") ? h("p", { class: "muted" }, "Only span ", chip(params.get("span_id")), " ", h("a", { href: "/logs?trace_id=" + enc(params.get("trace_id") || "") }, "show the whole trace")) : null;
    const results = h("div", { id: "log-results" });
    clear(content, form, note, results);

    const run = async () => {
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form).entries()) if (v) q.set(k, v);
      setQuery(q);
      const data = await api("/api/logs", Object.fromEntries(q.entries()));
      if (!data.available) {
        clear(results, banner("No telemetry store: logs are collected when services export OTLP to glassbox up."));
        body.dataset.ready = "1";
        return;
      }
      const rows = [];
      for (const r of data.logs) {
        const detail = h("tr", { class: "log-attrs", hidden: true }, h("td", { colspan: 6 },
          kv([["logger", r.logger], ["span", r.span_id], ["time", r.time], ["id", r.id]]),
          Object.keys(r.attributes || {}).length ? h("pre", { class: "payload" }, JSON.stringify(r.attributes, null, 2)) : null));
        const row = h(
          "tr",
          { class: "clickable log-row", dataset: { logId: String(r.id) }, onclick: (e) => { if (e.target.tagName !== "A") detail.hidden = !detail.hidden; } },
          h("td", { class: "small mono" }, fmtTime(r.time_ms)),
          h("td", { class: "level-" + r.level }, r.level),
          h("td", null, r.service),
          h("td", { class: "muted small" }, r.logger),
          h("td", { class: "message" }, r.message),
          h("td", null, r.trace_id ? h("a", { class: "trace-link mono small", href: "/traces/" + enc(r.trace_id) }, r.trace_id.slice(0, 12) + "…") : ""),
        );
        rows.push(row, detail);
      }
      clear(results, h("div", { class: "section" }, h("h2", null, data.logs.length + " log records"),
        data.logs.length ? table(["Time", "Level", "Service", "Logger", "Message", "Trace"], rows) : h("p", { class: "empty" }, "No log records match.")));
      body.dataset.ready = "1";
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      run().catch(fail);
    });
    await run();
  }

  // -- Traces -----------------------------------------------------------------------------

  async function traces() {
    const params = queryState();
    const names = await services();
    const form = h(
      "form",
      { class: "toolbar", id: "trace-search" },
      selectOf("service", "Service", [["", "any"], ...names.map((n) => [n, n])], params.get("service") || ""),
      h("label", null, "Min duration (ms)", h("input", { name: "min_duration_ms", type: "number", min: 0, step: "any", size: 6, value: params.get("min_duration_ms") || "" })),
      h("label", null, h("input", { name: "errors_only", type: "checkbox", value: "1", checked: params.get("errors_only") === "1" }), "errors only"),
      selectOf("since", "Since", RANGE_OPTIONS, params.get("since") || "24h"),
      h("button", { type: "submit", class: "primary" }, "Search"),
    );
    const results = h("div", { id: "trace-results" });
    clear(content, form, results);
    const run = async () => {
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form).entries()) if (v) q.set(k, v);
      setQuery(q);
      const data = await api("/api/traces", Object.fromEntries(q.entries()));
      if (!data.available) {
        clear(results, banner("No telemetry store: traces are collected when services export OTLP to glassbox up."));
        body.dataset.ready = "1";
        return;
      }
      const rows = data.traces.map((t) =>
        h(
          "tr",
          { class: "clickable trace-row", dataset: { traceId: t.trace_id }, onclick: () => { location.href = "/traces/" + enc(t.trace_id); } },
          h("td", { class: "small mono" }, fmtTime(t.start_ms)),
          h("td", null, t.service),
          h("td", null, h("a", { href: "/traces/" + enc(t.trace_id) }, t.name || t.root_name || "(unnamed)")),
          h("td", null, fmtMs(t.duration_ms)),
          h("td", null, String(t.span_count)),
          h("td", null, t.error ? badge("error", "error") : badge("ok", "ok")),
          h("td", { class: "mono small muted" }, t.trace_id),
        ),
      );
      clear(results, h("div", { class: "section" }, h("h2", null, data.traces.length + " traces"),
        rows.length ? table(["Start", "Service", "Root span", "Duration", "Spans", "Status", "Trace id"], rows) : h("p", { class: "empty" }, "No traces match.")));
      body.dataset.ready = "1";
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      run().catch(fail);
    });
    await run();
  }

  function spanDetail(trace, span) {
    const events = (span.events || []).map((e) =>
      h("tr", null, h("td", { class: "small" }, e.offset_ms === undefined ? "" : "+" + fmtMs(e.offset_ms)), h("td", null, e.name),
        h("td", null, h("pre", { class: "payload" }, JSON.stringify(e.attributes || {}, null, 2)))));
    return h(
      "section",
      { class: "detail", id: "span-detail", dataset: { spanId: span.span_id } },
      h("h2", null, span.name, " ", span.error ? badge("error", "error") : null),
      h("p", null, h("a", { class: "span-logs", href: "/logs?trace_id=" + enc(trace.trace_id) + "&span_id=" + enc(span.span_id) + "&since=all" }, "Logs of this span"), " · ",
        h("a", { href: "/logs?trace_id=" + enc(trace.trace_id) + "&since=all" }, "Logs of the whole trace")),
      kv([
        ["service", span.service],
        ["kind", span.kind],
        ["span id", span.span_id],
        ["parent", span.parent_span_id],
        ["starts", "+" + fmtMs(span.offset_ms)],
        ["duration", fmtMs(span.duration_ms)],
        ["status", String(span.status_code) + (span.status_message ? ": " + span.status_message : "")],
      ]),
      h("h3", null, "Attributes"),
      Object.keys(span.attributes || {}).length ? kv(Object.keys(span.attributes).sort().map((k) => [k, typeof span.attributes[k] === "string" ? span.attributes[k] : JSON.stringify(span.attributes[k])])) : h("p", { class: "muted" }, "none"),
      events.length ? [h("h3", null, "Events"), table(["At", "Event", "Attributes"], events)] : null,
    );
  }

  async function trace() {
    const traceId = body.dataset.traceId;
    const data = await api("/api/traces/" + enc(traceId));
    titleEl.textContent = "Trace: " + (data.name || traceId);
    document.title = "Trace " + (data.name || traceId) + " · glassbox console";
    const total = Math.max(data.duration_ms, 0.001);
    const detailSlot = h("div", { id: "span-slot" });
    const ticks = [0, 0.25, 0.5, 0.75].map((f) => {
      const t = h("div", { class: "wf-tick" }, fmtMs(total * f));
      t.style.left = f * 100 + "%";
      return t;
    });
    const head = h("div", { class: "wf-row head" }, h("div", { class: "wf-name" }, "Span"), h("div", { class: "wf-track" }, ticks));
    const rows = data.spans.map((span) => {
      const bar = h("div", { class: "wf-bar" + (span.error ? " error" : ""), title: span.name + " · " + fmtMs(span.duration_ms) },
        h("span", { class: "wf-label" }, fmtMs(span.duration_ms)));
      const left = Math.max(0, Math.min(100, (span.offset_ms / total) * 100));
      bar.style.left = left + "%";
      bar.style.width = Math.max(0.2, Math.min(100 - left, (span.duration_ms / total) * 100)) + "%";
      const name = h("div", { class: "wf-name", title: span.name },
        h("span", null, span.name), h("span", { class: "svc" }, span.service),
        h("a", { class: "logs-link", href: "/logs?trace_id=" + enc(data.trace_id) + "&span_id=" + enc(span.span_id) + "&since=all", onclick: (e) => e.stopPropagation() }, "logs"));
      name.style.paddingLeft = 8 + span.depth * 16 + "px";
      const track = h("div", { class: "wf-track" }, bar);
      const row = h("div", { class: "wf-row span-row", dataset: { spanId: span.span_id, depth: String(span.depth) }, onclick: () => {
        for (const r of waterfall.querySelectorAll(".wf-row.selected")) r.classList.remove("selected");
        row.classList.add("selected");
        clear(detailSlot, spanDetail(data, span));
      } }, name, track);
      return row;
    });
    const waterfall = h("div", { class: "waterfall", id: "waterfall" }, head, rows);
    clear(
      content,
      h("p", null, badge(data.error ? "error" : "ok", data.error ? "error" : "ok"), " ",
        h("span", { class: "mono" }, data.trace_id), " · ", fmtTime(data.start_ms), " · ", fmtMs(data.duration_ms), " · ",
        data.spans.length + " spans · services: " + data.services.join(", "), " · ",
        h("a", { id: "trace-logs", href: "/logs?trace_id=" + enc(data.trace_id) + "&since=all" }, "Logs of this trace")),
      waterfall,
      detailSlot,
    );
    body.dataset.ready = "1";
  }

  // -- start ------------------------------------------------------------------------------

  function fail(err) {
    const message = err && err.message ? err.message : String(err);
    const existing = document.getElementById("page-error");
    const box = banner(message, true);
    box.id = "page-error";
    if (existing) existing.replaceWith(box);
    else content.prepend(box);
    body.dataset.ready = body.dataset.ready || "error";
  }

  const pages = { overview, dashboards, dashboard, alerts, inbox, logs, traces, trace };
  const run = pages[page];
  if (run) {
    Promise.resolve()
      .then(run)
      .catch((err) => {
        clear(content);
        fail(err);
      });
    if (page === "overview") every(10000, () => overview().catch(fail));
  }
})();
