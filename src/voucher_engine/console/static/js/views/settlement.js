// Merchant settlement (结算) for the operator and auditors: payout runs and the bank's confirmations, holds,
// merchant statements, clawbacks (追回).
import { all, api, token } from "../api.js";
import { clear, h, link, notice, table } from "../dom.js";
import { t } from "../i18n.js";
import { when, yuan } from "../format.js";

function chinaNow() {
  // Now, written in China time with its offset (the API wants an offset, and the operator thinks in China time).
  const shifted = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 19);
  return `${shifted}+08:00`;
}

function problem(out, err) {
  clear(out).appendChild(notice("error", `${err.code || ""} ${err.message}`));
}

async function downloadFile(runId, out) {
  // The bank file needs the bearer token, so it is fetched here and handed to the browser as a blob: the token
  // never goes into a URL.
  const response = await fetch(`/v1/payout-runs/${encodeURIComponent(runId)}/file`, {
    headers: { Authorization: `Bearer ${token()}` }, credentials: "omit", cache: "no-store",
  });
  if (!response.ok) {
    out.appendChild(notice("error", `HTTP ${response.status}`));
    return;
  }
  const text = await response.text();
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const a = h("a", { href: url, download: `payout-${runId}.csv`, text: t("payouts.download"), "data-file": runId });
  out.appendChild(h("div", {}, a, h("pre", { class: "mono card", "data-csv": runId, text })));
}

export async function payouts(main, [runId]) {
  main.appendChild(h("h1", { text: t("payouts.title") }));
  if (runId) return run(main, runId);
  main.appendChild(h("p", { class: "muted", text: t("payouts.help") }));
  const cutoff = h("input", { id: "cutoff", size: 28, value: chinaNow() });
  const out = h("div", { id: "run-out" });
  main.appendChild(h("form", { class: "card row", id: "run-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const made = await api("/v1/payout-runs", { method: "POST", body: { cutoff: cutoff.value.trim() } });
      location.hash = `#/payouts/${encodeURIComponent(made.id)}`;
    } catch (err) {
      problem(out, err);
    }
  } }, h("label", {}, t("payouts.cutoff"), cutoff), h("button", { type: "submit", class: "primary", text: t("payouts.start") })));
  main.appendChild(out);
  const runs = await all("/v1/payout-runs", {}, 200);
  main.appendChild(h("div", { id: "run-list" }, table([
    { title: "id", cell: (r) => link(`#/payouts/${encodeURIComponent(r.id)}`, r.id, { "data-run": r.id }) },
    { title: t("payouts.cutoff"), cell: (r) => when(r.cutoff) },
    { title: t("payouts.items"), num: true, cell: (r) => String(r.item_count) },
    { title: t("payouts.total"), num: true, cell: (r) => yuan(r.total_fen) },
    { title: t("campaign.created"), cell: (r) => when(r.created_at) },
  ], runs, { empty: t("payouts.none") })));
}

async function run(main, runId) {
  const r = await api(`/v1/payout-runs/${encodeURIComponent(runId)}`);
  main.appendChild(h("p", {}, link("#/payouts", `← ${t("payouts.title")}`)));
  main.appendChild(h("p", {}, h("code", { text: r.id }), ` · ${t("payouts.cutoff")} ${when(r.cutoff)} · `,
    h("strong", { "data-figure": "run-total", text: `${t("payouts.total")} ${yuan(r.total_fen)}` }), ` · ${r.item_count} ${t("payouts.items")}`));
  const out = h("div", { id: "confirm-out" });
  const fileOut = h("div", { id: "file-out" });
  const confirm = async (item, status, reference) => {
    try {
      await api(`/v1/payout-runs/${encodeURIComponent(runId)}/confirmations`, { method: "POST",
        body: { items: [{ item_id: item.id, status, bank_reference: reference || `console-${Date.now()}` }] } });
      await payouts(clear(main), [runId]);
    } catch (err) {
      problem(out, err);
    }
  };
  main.appendChild(h("div", { class: "row" }, h("button", { type: "button", id: "download", text: t("payouts.file"), onclick: () => downloadFile(runId, clear(fileOut)) })));
  main.appendChild(fileOut);
  main.appendChild(out);
  main.appendChild(h("div", { id: "item-list" }, table([
    { title: t("payouts.merchant"), cell: (i) => h("code", { text: i.merchant_id }) },
    { title: t("merchants.wallet"), cell: (i) => h("code", { text: i.settlement_wallet }) },
    { title: t("payouts.amount"), num: true, cell: (i) => yuan(i.amount_fen) },
    { title: t("campaign.status"), cell: (i) => h("span", { class: `status ${i.status === "paid" ? "approved" : i.status === "failed" ? "declined" : "pending"}`, "data-item-status": i.status, text: t(`payouts.status.${i.status}`) }) },
    { title: t("payouts.reference"), cell: (i) => h("code", { text: i.bank_reference || i.reference }) },
    { title: "", cell: (i) => {
      if (i.status !== "sent") return "";
      const ref = h("input", { size: 14, placeholder: t("payouts.bank_ref"), "data-ref": i.id });
      return h("div", { class: "row" }, ref,
        h("button", { type: "button", class: "primary", "data-paid": i.id, text: t("payouts.paid"), onclick: () => confirm(i, "paid", ref.value.trim()) }),
        h("button", { type: "button", "data-failed": i.id, text: t("payouts.failed"), onclick: () => confirm(i, "failed", ref.value.trim()) }));
    } },
  ], r.items)));
}

// A merchant's day (China time) on its account: opening + lines = closing.
export function statementForm(defaultMerchant = "") {
  const merchant = h("input", { id: "st-merchant", value: defaultMerchant });
  const day = h("input", { id: "st-date", type: "date", value: chinaNow().slice(0, 10) });
  const out = h("div", { id: "st-out" });
  const form = h("form", { class: "row", id: "statement-form", onsubmit: async (e) => {
    e.preventDefault();
    clear(out);
    try {
      const s = await api(`/v1/merchants/${encodeURIComponent(merchant.value.trim())}/statement`, { query: { date: day.value } });
      out.appendChild(h("p", {}, `${t("statement.opening")} `, h("strong", { "data-figure": "opening", text: yuan(s.opening_fen) }),
        ` · ${t("statement.closing")} `, h("strong", { "data-figure": "closing", text: yuan(s.closing_fen) })));
      out.appendChild(table([
        { title: t("ledger.at"), cell: (l) => when(l.at) },
        { title: t("ledger.kind"), cell: (l) => t(`kind.${l.kind}`) },
        { title: t("payouts.amount"), num: true, cell: (l) => yuan(l.amount_fen) },
        { title: t("ledger.refs"), cell: (l) => h("code", { text: [l.redemption_id, l.campaign_id, l.payout_item_id].filter(Boolean).join(" ") }) },
      ], s.lines));
    } catch (err) {
      problem(out, err);
    }
  } }, h("label", {}, t("merchants.merchant_id"), merchant), h("label", {}, t("statement.date"), day),
  h("button", { type: "submit", class: "primary", text: t("statement.show") }));
  return h("div", { class: "card" }, h("h3", { text: t("statement.title") }), form, out);
}

// Take back the subsidy still standing on one redemption (admin, or the gov of the campaign's issuer).
export function clawbackForm() {
  const redemption = h("input", { id: "cb-redemption", size: 36 });
  const reason = h("input", { id: "cb-reason", size: 36 });
  const out = h("div", { id: "cb-out" });
  const form = h("form", { class: "row", id: "clawback-form", onsubmit: async (e) => {
    e.preventDefault();
    clear(out);
    if (!window.confirm(t("clawback.confirm"))) return;
    try {
      const c = await api(`/v1/redemptions/${encodeURIComponent(redemption.value.trim())}/clawback`, { method: "POST", body: { reason: reason.value.trim() } });
      out.appendChild(notice("ok", t("clawback.done", { amount: yuan(c.amount_fen), tx: c.ledger_tx_id })));
    } catch (err) {
      problem(out, err);
    }
  } }, h("label", {}, t("clawback.redemption"), redemption), h("label", {}, t("clawback.reason"), reason),
  h("button", { type: "submit", text: t("clawback.submit") }));
  return h("div", { class: "card" }, h("h3", { text: t("clawback.title") }), h("p", { class: "muted", text: t("clawback.help") }), form, out);
}

export async function hold(merchantId, holding, reason) {
  if (holding) return api(`/v1/merchants/${encodeURIComponent(merchantId)}/release`, { method: "POST" });
  return api(`/v1/merchants/${encodeURIComponent(merchantId)}/hold`, { method: "POST", body: { reason } });
}
