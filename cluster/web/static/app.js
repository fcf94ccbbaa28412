// legato web view: draws each DeskState the server pushes (GET /api/events, server-sent
// events). Everything is built with textContent: no text from the desk is parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const DASH = "—";
const pct = (x) => (x === null || x === undefined ? DASH : (x * 100).toFixed(1) + "%");
function usd(x) {
  if (x === null || x === undefined) return DASH;
  const whole = Math.round(Number(x));
  const text = "$" + Math.abs(whole).toLocaleString("en-US");
  return whole < 0 ? "-" + text : text;
}
const num = (x) => (x === null || x === undefined ? DASH : String(x));
const clamp = (x) => Math.min(Math.max(x, 0), 1);
const time = (ns) => new Date(ns / 1e6).toISOString().slice(11, 19);

function table(columns, rows, numeric) {
  const right = new Set(numeric || []);
  return h(
    "table",
    {},
    h("tr", {}, columns.map((c, i) => h("th", { class: right.has(i) ? "n" : null }, c))),
    rows.map((r) =>
      h("tr", {}, r.map((c, i) => h("td", { class: right.has(i) ? "n" : null }, c))),
    ),
  );
}

function none(text) {
  return h("p", { class: "none" }, text);
}

// -- the actions --------------------------------------------------------------------------
let actionsEnabled = false;

function notice(text, bad) {
  const n = $("notice");
  n.textContent = text;
  n.className = bad ? "bad" : "";
  n.hidden = false;
}

async function act(url, question, body) {
  if (!window.confirm(question)) return;
  const token = $("token").value.trim();
  if (!token) {
    notice("enter the token (top right) to act", true);
    return;
  }
  try {
    const r = await fetch(url, {
      method: "POST",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    const answer = await r.json().catch(() => ({}));
    if (r.ok) notice("done: " + JSON.stringify(answer).slice(0, 300), false);
    else notice(`refused (${r.status}): ${answer.error || r.statusText}`, true);
  } catch (e) {
    notice("the server did not answer: " + e, true);
  }
}

function actionButton(label, url, question, body) {
  return h(
    "button",
    {
      class: "danger",
      disabled: !actionsEnabled,
      title: actionsEnabled ? null : "read-only: the server was started without a token",
      on: { click: () => act(url, question, body) },
    },
    label,
  );
}

// -- the baskets --------------------------------------------------------------------------
function legBar(leg, basket, slowest) {
  const bar = h("span", { class: "bar" });
  if (basket.band !== null && basket.legs.length > 1) {
    // Where the band lets the legs be: from the slowest leg to the slowest plus the band.
    const band = h("span", { class: "band" });
    band.style.left = clamp(slowest) * 100 + "%";
    band.style.width = (clamp(slowest + basket.band) - clamp(slowest)) * 100 + "%";
    bar.append(band);
  }
  const fill = h("span", { class: "fill " + leg.side });
  fill.style.width = clamp(leg.progress) * 100 + "%";
  bar.append(fill);
  if (basket.schedule_progress > 0 && basket.schedule_progress < 1) {
    const mark = h("span", { class: "sched", title: "where the schedule says it should be" });
    mark.style.left = clamp(basket.schedule_progress) * 100 + "%";
    bar.append(mark);
  }
  return bar;
}

function basketBlock(b) {
  const slowest = b.legs.length ? Math.min(...b.legs.map((l) => l.progress)) : 0;
  const sched = h("span", { class: "bar small" });
  const sf = h("span", { class: "fill" });
  sf.style.width = clamp(b.schedule_progress) * 100 + "%";
  sched.append(sf);
  const head = h(
    "div",
    { class: "bhead" },
    h("span", { class: "bid" }, b.basket_id),
    h("span", { class: "state " + b.state, "data-field": "state" }, b.state),
    b.queue && b.queue !== b.state.toLowerCase() ? h("span", { class: "muted" }, b.queue) : null,
    h("span", {}, "schedule ", sched, " ", h("span", { "data-field": "schedule" }, pct(b.schedule_progress))),
    h(
      "span",
      { "data-field": "skew" },
      `skew ${pct(b.skew)} / band ${b.band === null ? "in $" : pct(b.band)}`,
    ),
    b.outside_band ? h("span", { class: "flag" }, "OUTSIDE THE BAND") : null,
    h("span", {}, "imbalance ", usd(b.imbalance_usd)),
    h("span", {}, "hedge ", usd(b.hedge_position_usd)),
    b.reason ? h("span", { class: "reason", title: b.reason }, b.reason) : null,
    h("span", { class: "spacer" }),
    b.terminal
      ? null
      : actionButton(
          "cancel",
          b.cancel_url,
          `Cancel basket ${b.basket_id}?\n\nIts policy then applies (unwind, hold or leave).`,
          { reason: "cancelled from the web view" },
        ),
  );
  const legs = h(
    "table",
    { class: "legs" },
    h(
      "tr",
      {},
      ["leg", "side", "completion (band shaded, schedule |)", "", "filled / target", "open", "status", "imbalance"].map(
        (c, i) => h("th", { class: i === 3 || i >= 4 ? "n" : null }, c),
      ),
    ),
    b.legs.map((leg) =>
      h(
        "tr",
        { "data-leg": `${b.basket_id}/${leg.leg_id}` },
        h("td", {}, leg.leg_id),
        h("td", { class: "side " + leg.side }, leg.side.toLowerCase()),
        h("td", {}, legBar(leg, b, slowest)),
        h("td", { class: "n pct" }, pct(leg.progress)),
        h("td", { class: "n" }, `${leg.filled_qty} / ${leg.target_qty}`),
        h("td", { class: "n" }, num(leg.open_qty)),
        h(
          "td",
          { class: "n" + (leg.blocked ? " blocked" : "") },
          leg.status.toLowerCase() + (leg.blocked && leg.reason ? ` (${leg.reason})` : ""),
        ),
        h("td", { class: "n" }, usd(leg.imbalance_usd)),
      ),
    ),
  );
  const transfers = b.transfers.length
    ? h("div", { class: "muted" }, b.transfers.map((t) => h("div", {}, `transfer ${t.message} (${t.age_s} s)`)))
    : null;
  return h(
    "div",
    { class: "basket" + (b.outside_band ? " outside" : ""), "data-basket": b.basket_id },
    head,
    legs,
    transfers,
  );
}

// -- the rest of the desk -----------------------------------------------------------------
function hedgeDesk(hedge) {
  if (!hedge) return none("the hedge desk did not answer");
  const rows = [];
  for (const [venue, byInstrument] of Object.entries(hedge.positions)) {
    for (const [instrument, position] of Object.entries(byInstrument)) {
      rows.push([venue, instrument, usd(position)]);
    }
  }
  const held = hedge.held.map((x) => [
    x.basket_id,
    usd(x.desk_position_usd),
    actionButton(
      "release",
      x.release_url,
      `Release the hedge held for basket ${x.basket_id}?\n\nThe desk trades its exposure away.`,
    ),
  ]);
  return h(
    "div",
    {},
    rows.length ? table(["venue", "instrument", "position"], rows, [2]) : none("no position"),
    h("h3", { class: "muted" }, "held for finished baskets"),
    held.length ? table(["basket", "desk gross", ""], held, [1]) : none("no hedge held"),
  );
}

function collateral(c) {
  if (!c) return none("the collateral actor did not answer");
  const pools = c.pools.map((p) => [p.venue, p.asset, num(p.available), num(p.reserved), num(p.free)]);
  const reservations = c.reservations.map((r) => [
    r.basket_id,
    Object.entries(r.needs)
      .map(([v, x]) => `${v} ${usd(x)}`)
      .join("  "),
    Object.entries(r.holdings || {})
      .map(([v, hs]) => `${v} ` + Object.entries(hs).map(([a, q]) => `${q} ${a}`).join(" "))
      .join("  ") || DASH,
  ]);
  return h(
    "div",
    {},
    pools.length
      ? table(["venue", "asset", "available", "reserved", "free"], pools, [2, 3, 4])
      : none("no account figures yet"),
    h("h3", { class: "muted" }, "reservations"),
    reservations.length ? table(["basket", "USD per venue", "holdings"], reservations) : none("none held"),
  );
}

function transfers(ts) {
  if (!ts.length) return none("none");
  return table(
    ["transfer", "basket", "kind", "amount", "from → to", "state", "age"],
    ts.map((t) => [
      t.client_transfer_id,
      t.basket_id,
      t.kind,
      `${t.amount} ${t.asset}`,
      `${t.source} → ${t.destination}`,
      t.state,
      `${t.age_s} s`,
    ]),
    [3, 6],
  );
}

function runs(rs) {
  if (!rs.length) return none("no run in the journal");
  return table(
    ["run", "state", "created (UTC)", "updated (UTC)", "report"],
    rs.map((r) => [
      r.run_id,
      r.state,
      r.created.replace("T", " ").replace("Z", ""),
      r.updated.replace("T", " ").replace("Z", ""),
      r.report_url ? h("a", { href: r.report_url, target: "_blank", rel: "noopener" }, "report") : DASH,
    ]),
  );
}

function replace(id, node) {
  $(id).replaceChildren(node);
}

function draw(s) {
  actionsEnabled = s.actions_enabled;
  $("tokenform").hidden = !s.actions_enabled;
  $("where").textContent = `namespace ${s.namespace}` + (s.journal ? ` · journal ${s.journal}` : "");
  $("updated").textContent = "updated " + time(s.ts_ns) + " UTC";
  $("basketcount").textContent = s.baskets.length ? `(${s.baskets.length})` : "";
  replace("baskets", s.baskets.length ? h("div", {}, s.baskets.map(basketBlock)) : none("no basket running"));
  replace(
    "waiting",
    s.waiting.length ? h("p", { class: "muted" }, "waiting their turn: " + s.waiting.join(", ")) : h("span"),
  );
  replace("hedge", hedgeDesk(s.hedge));
  replace("collateral", collateral(s.collateral));
  replace("transfers", transfers(s.transfers));
  replace("runs", runs(s.runs));
  const p = $("problems");
  p.hidden = !s.problems.length;
  p.textContent = s.problems.join(" · ");
}

// -- the stream ---------------------------------------------------------------------------
function setLive(on, text) {
  const l = $("live");
  l.className = "live " + (on ? "on" : "off");
  l.textContent = text;
}

function listen() {
  const source = new EventSource("/api/events");
  source.addEventListener("state", (ev) => {
    setLive(true, "live");
    draw(JSON.parse(ev.data));
  });
  source.addEventListener("open", () => setLive(true, "live"));
  source.addEventListener("error", () => setLive(false, "reconnecting"));
}

async function start() {
  $("tokenform").addEventListener("submit", (ev) => ev.preventDefault());
  $("token").value = sessionStorage.getItem("legato-web-token") || "";
  $("token").addEventListener("change", () => sessionStorage.setItem("legato-web-token", $("token").value.trim()));
  const r = await fetch("/api/state", { credentials: "same-origin" });
  if (r.status === 401) {
    // Bound beyond this machine: trade the token for a session cookie, then listen.
    $("desk").hidden = true;
    $("login").hidden = false;
    $("loginform").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const token = $("logintoken").value.trim();
      const answer = await fetch("/api/session", {
        method: "POST",
        headers: { Authorization: "Bearer " + token },
        credentials: "same-origin",
      });
      if (!answer.ok) {
        notice("the token does not match", true);
        return;
      }
      sessionStorage.setItem("legato-web-token", token);
      $("token").value = token;
      $("login").hidden = true;
      $("desk").hidden = false;
      $("notice").hidden = true;
      listen();
    });
    return;
  }
  if (r.ok) draw(await r.json());
  listen();
}

start();
