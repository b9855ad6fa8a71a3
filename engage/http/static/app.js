// The Engage dashboard: plain JS and inline SVG, served from the package (no CDN).
"use strict";

const KEY = "engage.readKey";
const COLORS = ["#2f6fde", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#d4ac0d", "#7f8c8d", "#e84393", "#2c3e50"];
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const ns = ["svg", "rect", "line", "polyline", "text", "polygon", "g", "circle", "title"].includes(tag)
    ? "http://www.w3.org/2000/svg" : null;
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  // style through the CSSOM: the Content-Security-Policy refuses inline style attributes
  for (const [k, v] of Object.entries(attrs)) k === "style" ? (node.style.cssText = v) : node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) } });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    throw new Unauthorized(body.error || response.statusText);
  }
  if (response.status === 404) return null;
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || response.statusText);
  }
  return response.json();
}

const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US", { maximumFractionDigits: 2 }) : n ?? "–");
let CURRENCY = "USD";  // the server's ENGAGE_CURRENCY, from /v1/kpis
const money = (n) => (typeof n === "number"
  ? n.toLocaleString("en-US", { style: "currency", currency: CURRENCY, maximumFractionDigits: 2 }) : "–");
const pct = (n) => (typeof n === "number" ? (n * 100).toFixed(1) + "%" : "–");
const MONEY_KEY = /amount|spend|revenue|order_value|aov/i;
const RATE_KEY = /rate/i;
// one number, shown by what it is: money with its currency, rates as percentages
const show = (key, v) => (MONEY_KEY.test(key) ? money(v) : RATE_KEY.test(key) ? pct(v) : fmt(v));

function tiles(status) {
  const items = [
    ["events on the log", status.log_events], ["profiles", status.profiles], ["triggers fired, all time", status.triggers],
    ["processing lag (events)", status.lag], ["dead letters", status.dead_letters],
  ];
  $("tiles").replaceChildren(...items.map(([label, v]) =>
    el("div", { class: "tile" }, el("div", { class: "v" }, fmt(v)), el("div", { class: "l" }, label))));
  $("clock").textContent = status.clock ? "clock " + status.clock : "";
}

function lineChart(stats) {
  const width = 1100, height = 260, left = 44, bottom = 24, top = 10;
  const seen = [...new Set(stats.series.flatMap((s) => s.points.map((p) => p[0])))].sort();
  // every bucket between the first and the last, so quiet periods show as zero
  const step = { hour: 3600e3, day: 86400e3, week: 7 * 86400e3 }[stats.bucket] || 86400e3;
  const buckets = [];
  if (seen.length) {
    const last = Date.parse(seen[seen.length - 1]);
    for (let t = Date.parse(seen[0]); t <= last && buckets.length < 2000; t += step) {
      buckets.push(new Date(t).toISOString().replace(".000Z", "Z"));
    }
  }
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": "triggers per rule over time" });
  if (!buckets.length) {
    svg.append(el("text", { x: 20, y: 40 }, "no triggers yet"));
    return svg;
  }
  const max = Math.max(4, ...stats.series.flatMap((s) => s.points.map((p) => p[1])));
  const x = (i) => left + (buckets.length === 1 ? (width - left) / 2 : (i * (width - left - 10)) / (buckets.length - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    svg.append(el("line", { x1: left, x2: width, y1: y(v), y2: y(v), stroke: "#e6e9ef" }));
    svg.append(el("text", { x: 4, y: y(v) + 4 }, Math.round(v)));
  }
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  buckets.forEach((b, i) => {
    if (i % every === 0) svg.append(el("text", { x: x(i), y: height - 6, "text-anchor": i === 0 ? "start" : i >= buckets.length - every ? "end" : "middle" }, stats.bucket === "hour" ? b.slice(5, 16) : b.slice(0, 10)));
  });
  stats.series.forEach((s, n) => {
    const byBucket = new Map(s.points.map((p) => [p[0], p[1]]));
    const pts = buckets.map((b, i) => `${x(i)},${y(byBucket.get(b) || 0)}`).join(" ");
    const color = COLORS[n % COLORS.length];
    svg.append(el("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2 }, el("title", {}, s.rule_id)));
    buckets.forEach((b, i) => {
      if (byBucket.has(b)) svg.append(el("circle", { cx: x(i), cy: y(byBucket.get(b)), r: 3, fill: color }, el("title", {}, `${s.rule_id} ${b.slice(0, 10)}: ${byBucket.get(b)}`)));
    });
  });
  return svg;
}

async function loadTriggers() {
  const stats = await api("/v1/triggers/stats?bucket=" + $("bucket").value);
  $("trigger-chart").replaceChildren(lineChart(stats));
  $("trigger-legend").replaceChildren(...stats.series.map((s, n) =>
    el("span", {}, el("i", { style: `background:${COLORS[n % COLORS.length]}` }), `${s.rule_id} (${fmt(stats.totals[s.rule_id] || 0)})`)));
}

function pyramid(kpis) {
  // Levels from the whole business (top) down to one customer (bottom); each a list of [label, value].
  const levels = kpis.pyramid || [];
  if (!levels.length) return el("p", { class: "muted" }, "no KPIs yet");
  const width = 900, rowH = 64, height = levels.length * rowH + 10;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": "KPI pyramid" });
  levels.forEach((level, i) => {
    const inset = ((levels.length - 1 - i) * 180) / Math.max(1, levels.length - 1);
    const inset2 = ((levels.length - 2 - i) * 180) / Math.max(1, levels.length - 1);
    const yTop = 5 + i * rowH, yBot = yTop + rowH - 4;
    const top = Math.max(0, inset), bot = Math.max(0, inset2);
    const shape = `${width / 2 - (width / 2 - top)},${yTop} ${width / 2 + (width / 2 - top)},${yTop} ${width / 2 + (width / 2 - bot)},${yBot} ${width / 2 - (width / 2 - bot)},${yBot}`;
    svg.append(el("polygon", { points: shape, fill: COLORS[i % COLORS.length], opacity: 0.9 }));
    svg.append(el("text", { x: width / 2, y: yTop + 22, "text-anchor": "middle", class: "pyramid-label" }, level.name));
    const inMoney = /net revenue/.test(level.name);  // the channels level: net revenue per channel
    const values = level.values.map(([k, v]) => `${k}: ${inMoney && k !== "events" ? money(v) : show(k, v)}`).join("   ·   ");
    svg.append(el("text", { x: width / 2, y: yTop + 42, "text-anchor": "middle", class: "pyramid-label" }, values));
  });
  return svg;
}

async function loadKpis() {
  const kpis = await api("/v1/kpis?by=week&last=8");
  if (kpis === null) {
    $("kpis").replaceChildren(el("p", { class: "muted" }, "KPIs are not available in this version of the server."));
    return;
  }
  if (kpis.currency) CURRENCY = kpis.currency;
  const head = el("tr", {}, ...["week of", "active customers", "new", "purchases", `net revenue (${CURRENCY})`, `AOV (${CURRENCY})`, "open rate", "NPS", "triggers"].map((h) => el("th", {}, h)));
  const rows = kpis.periods.slice(-8).reverse().map((p) => {
    const b = p.business;
    const fired = Object.values(p.triggers_by_rule).reduce((a, n) => a + n, 0);
    return el("tr", {}, ...[fmt(p.period), fmt(b.active_customers), fmt(b.new_customers), fmt(b.purchases), money(b.net_revenue),
      money(b.average_order_value), pct(b.open_rate), fmt(b.nps), fmt(fired)].map((v) => el("td", {}, v)));
  });
  const table = el("table", { class: "grid", id: "kpi-periods" }, el("thead", {}, head), el("tbody", {}, ...rows));
  $("kpis").replaceChildren(pyramid(kpis), el("h4", {}, `Latest weeks (clock ${kpis.as_of || "–"})`), table);
}

function hours(h) {
  if (typeof h !== "number") return "–";
  return h >= 48 ? (h / 24).toFixed(1) + " days" : h.toFixed(1) + " hours";
}

function upliftText(u) {
  if (!u) return "– (no control arm yet)";
  const sign = (x) => (x >= 0 ? "+" : "") + (x * 100).toFixed(1) + "%";
  return `${sign(u.difference)} (95% CI ${sign(u.ci95[0])} to ${sign(u.ci95[1])})`;
}

async function loadOutcomes() {
  const found = await api("/v1/outcomes");
  if (found === null) return;
  const rows = [];
  for (const rule of found.rules) {
    for (const arm of rule.arms) {
      const first = arm.arm === "treatment";
      rows.push(el("tr", { class: "arm-" + arm.arm },
        el("td", {}, first ? rule.rule_id : ""), el("td", {}, arm.arm), el("td", {}, fmt(arm.triggers)),
        el("td", {}, fmt(arm.conversions)), el("td", {}, pct(arm.conversion_rate)), el("td", {}, money(arm.revenue)),
        el("td", {}, hours(arm.median_hours_to_convert)), el("td", {}, fmt(arm.feedback.delivered)),
        el("td", {}, fmt(arm.feedback.opened)), el("td", {}, fmt(arm.feedback.clicked)),
        el("td", { class: "uplift" }, first ? upliftText(rule.uplift) : "")));
    }
  }
  $("outcomes").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 11 }, "no rule with a goal"))]));
}

async function loadDlq() {
  const dlq = await api("/v1/dlq?limit=20");
  $("dlq-total").textContent = `${fmt(dlq.total)} rejected input${dlq.total === 1 ? "" : "s"}`;
  const rows = dlq.items.slice().reverse().map((d) => el("tr", {},
    el("td", {}, d.id), el("td", {}, d.received_at), el("td", {}, d.source || "?"),
    el("td", {}, d.line ? "line " + d.line : d.stage), el("td", {}, d.field), el("td", {}, d.reason),
    el("td", { class: "raw" }, d.raw.length > 160 ? d.raw.slice(0, 160) + "…" : d.raw)));
  $("dlq").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7 }, "empty"))]));
}

async function openCustomer(id) {
  const [view, timeline] = await Promise.all([
    api("/v1/customers/" + encodeURIComponent(id)),
    api("/v1/customers/" + encodeURIComponent(id) + "/timeline"),
  ]);
  if (view === null) return;
  $("customer").hidden = false;
  $("customer-title").textContent = `Customer ${view.customer_id} · ${view.lifecycle_stage}`;
  const keys = ["lifecycle_stage", "lifetime_spend", "order_count", "average_order_value", "last_purchase_at",
    "first_seen", "last_seen", "event_count", "email_sent", "open_rate", "click_rate", "subscribed",
    "nps_last", "csat_last", "support_cases", "open_support_cases", "engagement_score",
    "p_alive", "churn_risk", "expected_purchases_90d", "predicted_clv_365d", "email", "name"];
  $("customer-360").replaceChildren(...keys.map((k) => el("tr", {}, el("td", {}, k), el("td", {}, show(k, view[k])))));
  const items = timeline ? timeline.items : [];
  $("timeline").tBodies[0].replaceChildren(...items.map((item) => item.kind === "trigger"
    ? el("tr", { class: "trigger" }, el("td", {}, item.occurred_at), el("td", {}, "⚑ trigger " + item.trigger.rule_id), el("td", {}, "–"),
        el("td", {}, details(item.trigger.details)))
    : el("tr", {}, el("td", {}, item.occurred_at), el("td", {}, item.type), el("td", {}, item.channel),
        el("td", {}, touchpointDetails(item.properties)))));
}

function touchpointDetails(props) {
  // an event's amount is in its own currency (ingest defaults it to USD)
  const inOwn = (v) => v.toLocaleString("en-US", { style: "currency", currency: props.currency || "USD" });
  return Object.entries(props).filter(([k]) => k !== "items" && k !== "currency")
    .map(([k, v]) => `${k}=${k === "amount" && typeof v === "number" ? inOwn(v) : v}`).join(", ");
}

function details(obj) {
  return Object.entries(obj).map(([k, v]) => `${k}=${typeof v === "number" ? show(k, v) : v}`).join(", ");
}

// -- Who to contact now: the newest triggers, filtered, with a link to each customer's 360

function contactQuery() {
  const q = new URLSearchParams({ limit: $("contact-limit").value });
  if ($("contact-rule").value) q.set("rule_id", $("contact-rule").value);
  if ($("contact-kind").value) q.set("kind", $("contact-kind").value);
  if ($("contact-from").value) q.set("since", $("contact-from").value + "T00:00:00Z");
  if ($("contact-to").value) {  // the "to" day is included: until the next midnight
    const next = new Date(Date.parse($("contact-to").value + "T00:00:00Z") + 86400e3);
    q.set("until", next.toISOString().replace(".000Z", "Z"));
  }
  return q;
}

function fillSelect(select, values) {
  const chosen = select.value;
  const first = select.options[0];
  select.replaceChildren(first, ...values.map((v) => el("option", { value: v }, v)));
  select.value = values.includes(chosen) ? chosen : "";
}

async function loadContact() {
  const [latest, stats] = await Promise.all([api("/v1/triggers/latest?" + contactQuery()), api("/v1/triggers/stats?bucket=week")]);
  const kinds = latest.kinds_by_rule || {};
  fillSelect($("contact-rule"), [...new Set([...Object.keys(stats.totals), ...Object.keys(kinds)])].sort());
  fillSelect($("contact-kind"), [...new Set([...Object.values(kinds), ...latest.items.map((t) => t.kind)])].sort());
  const rows = latest.items.map((t) => el("tr", {},
    el("td", {}, t.fired_at), el("td", {}, el("a", { href: "#customer/" + encodeURIComponent(t.customer_id), title: "open the 360" }, t.customer_id)),
    el("td", {}, t.rule_id), el("td", {}, t.kind), el("td", { class: "details" }, details(t.details))));
  $("contact-list").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5 }, "no trigger matches these filters"))]));
  $("contact-note").textContent = latest.items.length
    ? `${fmt(latest.items.length)} shown, newest first; fired_at is when the rule fired (event time, UTC).` : "";
}

async function exportContactCsv() {
  const response = await fetch("/v1/triggers/latest?format=csv&" + contactQuery(),
    { headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) } });
  if (!response.ok) throw new Error("CSV export failed: " + response.status);
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: "contact-now.csv" });
  document.body.append(link);
  link.click();
  link.remove();
}

function openFromHash() {
  const match = location.hash.match(/^#customer\/(.+)$/);
  if (!match) return;
  openCustomer(decodeURIComponent(match[1])).then(() => $("customer").scrollIntoView()).catch(fail);
}

async function search(event) {
  if (event) event.preventDefault();
  const found = await api("/v1/customers?limit=30&q=" + encodeURIComponent($("search").value.trim()));
  $("search-results").replaceChildren(...found.items.map((c) =>
    el("li", {}, Object.assign(el("button", { type: "button" }, c.customer_id), { onclick: () => openCustomer(c.customer_id).catch(fail) }))));
  if (found.items.length === 1) await openCustomer(found.items[0].customer_id);
}

function fail(error) {
  if (error instanceof Unauthorized) {
    sessionStorage.removeItem(KEY);
    showLogin("That key was refused: " + error.message);
  } else {
    console.error(error);
  }
}

async function refresh() {
  tiles(await api("/v1/status"));
  await loadKpis();  // first: it says which currency money is in
  await Promise.all([loadTriggers(), loadDlq(), loadContact(), loadOutcomes()]);
}

function showLogin(message) {
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function start() {
  if (!sessionStorage.getItem(KEY)) return showLogin();
  try {
    await refresh();
  } catch (error) {
    return fail(error);
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  openFromHash();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  start();
});
$("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); showLogin(); });
$("search-form").addEventListener("submit", (e) => search(e).catch(fail));
$("bucket").addEventListener("change", () => loadTriggers().catch(fail));
$("contact-form").addEventListener("submit", (e) => { e.preventDefault(); loadContact().catch(fail); });
$("contact-csv").addEventListener("click", () => exportContactCsv().catch(fail));
window.addEventListener("hashchange", openFromHash);
setInterval(() => { if (!$("app").hidden) refresh().catch(fail); }, 10000);
start();
