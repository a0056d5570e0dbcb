// The account console: a page over the account API, nothing else (no framework, no external
// resource). The token lives in this tab's sessionStorage and travels only in the
// Authorization header. Money is shown as the API's decimal strings, never as numbers.
"use strict";

const state = { token: sessionStorage.getItem("token"), tenant: null, view: null, arDirty: false };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function when(instant) {
  return instant ? instant.replace("T", " ").replace(/:\d\d\.\d{3}Z$/, " UTC") : "–";
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function api(method, path, body, accept = "application/json") {
  const headers = { Authorization: "Bearer " + state.token, Accept: accept };
  const init = { method, headers };
  if (method !== "GET") headers["Idempotency-Key"] = newKey();
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (accept !== "application/json" && resp.ok) return { ok: true, status: resp.status, blob: await resp.blob() };
  const data = await resp.json().catch(() => ({}));
  return { ok: resp.ok, status: resp.status, data };
}

function tenantPath(rest) {
  return "/v1/tenants/" + encodeURIComponent(state.tenant) + rest;
}

function problemText(r) {
  return r.data && r.data.reason ? `refused: ${r.data.reason}` : `failed (HTTP ${r.status})`;
}

// ------------------------------------------------------------------ sign in

async function signIn(token) {
  state.token = token;
  const who = await api("GET", "/v1/whoami");
  if (!who.ok) {
    $("sign-in-error").textContent = who.status === 401 ? "That token is not valid." : problemText(who);
    state.token = null;
    sessionStorage.removeItem("token");
    return;
  }
  sessionStorage.setItem("token", token);
  $("sign-in-panel").hidden = true;
  $("sign-out").hidden = false;
  $("sign-in-error").textContent = "";
  if (who.data.scope === "operator") {
    $("who").textContent = "operator";
    const list = await api("GET", "/v1/tenants");
    const select = $("tenant");
    select.replaceChildren(...(list.data.tenants || []).map((t) => el("option", { value: t, textContent: t })));
    $("tenant-panel").hidden = false;
    select.onchange = () => chooseTenant(select.value);
    if (select.value) chooseTenant(select.value);
  } else {
    $("who").textContent = "tenant " + who.data.tenant_id;
    chooseTenant(who.data.tenant_id);
  }
}

function chooseTenant(tenant) {
  state.tenant = tenant;
  state.view = null;
  state.arDirty = false;
  $("account").hidden = false;
  refresh();
  refreshCharges();
}

// ------------------------------------------------------------------ account view

async function refresh() {
  if (!state.tenant) return;
  const r = await api("GET", tenantPath("/account"));
  if (r.ok) renderView(r.data);
  else if (r.status === 404) $("balance").textContent = "no account yet";
  const users = await api("GET", tenantPath("/users"));
  if (users.ok) renderLicences(users.data.users);
}

function renderView(v) {
  const before = state.view;
  state.view = v;
  $("balance").textContent = v.balance;
  $("currency").textContent = v.currency || "";
  $("held").textContent = v.held;
  $("available").textContent = v.available;
  $("as-of").textContent = when(v.as_of);
  $("lots").tBodies[0].replaceChildren(
    ...v.lots.map((l) =>
      el("tr", {}, el("td", { textContent: l.lot_id }), el("td", { textContent: when(l.purchased_at) }),
        el("td", { textContent: when(l.expires_at) + (l.expired ? " (expired)" : "") }),
        el("td", { class: "num", textContent: l.remaining })),
    ),
  );
  $("pools").replaceChildren(
    ...(v.pools.length ? v.pools.map(poolBar) : [el("p", { class: "muted", textContent: "no pools" })]),
  );
  const ar = v.auto_recharge;
  $("recharge-state").textContent = ar.state.replace("_", " ") +
    (ar.request_id ? ` (request ${ar.request_id} for ${ar.request_amount})` : "") +
    (ar.backoff_until ? ` until ${when(ar.backoff_until)}` : "");
  if (!state.arDirty) {
    $("ar-enabled").checked = ar.enabled;
    $("ar-trigger").value = ar.trigger_amount || "";
    $("ar-amount").value = ar.recharge_amount || "";
  }
  $("live-calls").textContent = v.live_calls.length
    ? v.live_calls.map((c) => `${c.call_id} (${c.user_id || "no user"}, ${c.pool || "credits"}, holds ${c.held})`).join(", ")
    : "none";
  if (before && before.balance !== v.balance && $("funds-status").dataset.pending) {
    $("funds-status").textContent = `Applied: the balance is now ${v.balance}.`;
    delete $("funds-status").dataset.pending;
  }
}

function poolBar(p) {
  const share = p.allowance_seconds > 0 ? Math.min(100, (100 * p.used_seconds) / p.allowance_seconds) : 100;
  const bar = el("div", { class: "bar" + (p.remaining_seconds <= 0 ? " full" : "") }, el("div"));
  bar.firstChild.style.width = share.toFixed(1) + "%";
  const minutes = (s) => (s / 60).toFixed(1);
  return el("div", { class: "pool", "data-pool": p.pool },
    el("div", { class: "label" }, el("span", { textContent: `${p.pool} (${p.month})` }),
      el("span", { textContent: `${minutes(p.used_seconds)} of ${minutes(p.allowance_seconds)} min used, ${minutes(p.remaining_seconds)} left` })),
    bar);
}

function renderLicences(users) {
  $("licences").replaceChildren(
    ...users.map((u) => {
      const box = el("input", { type: "checkbox", checked: u.licensed, "data-user": u.user_id });
      box.onchange = () => toggleLicence(u.user_id, box.checked);
      return el("li", {}, el("span", { textContent: u.user_id }), el("label", {}, box, " licensed"));
    }),
  );
}

async function toggleLicence(user, on) {
  const r = await api(on ? "PUT" : "DELETE", tenantPath("/licences/" + encodeURIComponent(user)));
  $("licence-status").textContent = r.ok
    ? `${on ? "Assigning" : "Removing"} the licence of ${user} (command ${r.data.command_id})…`
    : problemText(r);
}

// ------------------------------------------------------------------ charges

async function refreshCharges() {
  if (!state.tenant) return;
  const r = await api("GET", tenantPath("/charges?limit=20"));
  if (!r.ok) return;
  $("charges").tBodies[0].replaceChildren(
    ...r.data.items.map((c) =>
      el("tr", {}, el("td", { textContent: when(c.start) }), el("td", { textContent: c.user_id || "–" }),
        el("td", { textContent: c.destination || c.status }), el("td", { class: "num", textContent: c.billed_seconds }),
        el("td", { textContent: c.pool || "–" }), el("td", { class: "num", textContent: c.charge }),
        el("td", { textContent: c.disconnected || "" })),
    ),
  );
}

// ------------------------------------------------------------------ forms

function wire() {
  $("sign-in").onsubmit = (e) => {
    e.preventDefault();
    signIn($("token").value.trim());
    $("token").value = "";
  };
  $("sign-out").onclick = () => {
    sessionStorage.removeItem("token");
    location.reload();
  };
  $("funds").onsubmit = async (e) => {
    e.preventDefault();
    const amount = $("funds-amount").value.trim();
    const r = await api("POST", tenantPath("/funds"), { amount, currency: (state.view && state.view.currency) || "" });
    const status = $("funds-status");
    if (r.ok) {
      status.textContent = `Accepted (command ${r.data.command_id}); waiting for the worker to apply it…`;
      status.dataset.pending = "1";
      $("funds-amount").value = "";
    } else status.textContent = problemText(r);
  };
  for (const id of ["ar-enabled", "ar-trigger", "ar-amount"]) $(id).oninput = () => (state.arDirty = true);
  $("auto-recharge").onsubmit = async (e) => {
    e.preventDefault();
    const amount = (id) => $(id).value.trim() || null;
    const r = await api("PUT", tenantPath("/auto-recharge"), {
      enabled: $("ar-enabled").checked,
      trigger_amount: amount("ar-trigger"),
      recharge_amount: amount("ar-amount"),
    });
    $("ar-status").textContent = r.ok ? `Saved (command ${r.data.command_id}).` : problemText(r);
    if (r.ok) state.arDirty = false;
  };
  $("licence-add").onsubmit = async (e) => {
    e.preventDefault();
    const user = $("licence-user").value.trim();
    if (user) await toggleLicence(user, true);
    $("licence-user").value = "";
  };
  $("report").onsubmit = async (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if ($("report-from").value) q.set("from", $("report-from").value);
    if ($("report-to").value) q.set("to", $("report-to").value);
    $("report-status").textContent = "Building the report…";
    const r = await api("GET", tenantPath("/report.xlsx?" + q), undefined,
      "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    if (!r.ok) {
      $("report-status").textContent = problemText(r);
      return;
    }
    const a = el("a", { href: URL.createObjectURL(r.blob), download: `usage-${state.tenant}.xlsx` });
    document.body.append(a);
    a.click();
    a.remove();
    $("report-status").textContent = `Downloaded (${r.blob.size} bytes).`;
  };
}

wire();
setInterval(refresh, 1000);
setInterval(refreshCharges, 3000);
if (state.token) signIn(state.token);
