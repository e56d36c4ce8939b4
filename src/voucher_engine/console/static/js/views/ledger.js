// The ledger explorer (账本) for auditors: transactions by filter, a voucher's trace, an account, a campaign's books.
import { api } from "../api.js";
import { clear, h, link, notice, table } from "../dom.js";
import { t } from "../i18n.js";
import { when, yuan } from "../format.js";
import { statementForm } from "./settlement.js";

const TABS = ["transactions", "trace", "account", "books", "statement"];

function postings(tx) {
  return h("div", {}, tx.postings.map((p) => h("div", { class: "mono" },
    p.debit_fen ? `+${yuan(p.debit_fen)} ` : `−${yuan(p.credit_fen)} `, p.account)));
}

function txTable(items) {
  return table([
    { title: "seq", num: true, cell: (tx) => String(tx.seq) },
    { title: t("ledger.kind"), cell: (tx) => h("span", { class: "status", text: t(`kind.${tx.kind}`) }) },
    { title: t("ledger.at"), cell: (tx) => when(tx.at) },
    { title: t("ledger.postings"), cell: postings },
    { title: t("ledger.refs"), cell: (tx) => h("code", { text: Object.entries(tx.refs).map(([k, x]) => `${k}=${x}`).join(" ") }) },
    { title: "", cell: (tx) => link(`#/verify/${encodeURIComponent(tx.id)}`, t("ledger.verify"), { "data-verify": tx.id }) },
  ], items, { empty: t("ledger.none") });
}

function field(id, label, attrs = {}) {
  const input = h("input", { id, ...attrs });
  return [h("label", {}, label, input), input];
}

async function transactions(box) {
  const [campaignLabel, campaign] = field("f-campaign", t("ledger.campaign_id"));
  const [merchantLabel, merchant] = field("f-merchant", t("ledger.merchant_id"));
  const [voucherLabel, voucher] = field("f-voucher", t("ledger.voucher_id"));
  const [fromLabel, from] = field("f-from", t("ledger.from"), { placeholder: "2025-01-01T00:00:00+08:00", size: 26 });
  const [toLabel, to] = field("f-to", t("ledger.to"), { placeholder: "2025-02-01T00:00:00+08:00", size: 26 });
  const out = h("div", { id: "tx-list" });
  let cursor = null;
  let generation = 0; // a search started later wins over one still on its way
  const load = async (more) => {
    const mine = more ? generation : ++generation;
    if (!more) cursor = null;
    try {
      const page = await api("/v1/ledger/transactions", { query: {
        campaign_id: campaign.value.trim(), merchant_id: merchant.value.trim(), voucher_id: voucher.value.trim(),
        from: from.value.trim(), to: to.value.trim(), limit: 50, cursor } });
      if (mine !== generation) return;
      if (!more) clear(out);
      const old = out.querySelector("button.more");
      if (old) old.remove();
      out.appendChild(txTable(page.items));
      cursor = page.next_cursor;
      if (cursor) out.appendChild(h("button", { type: "button", class: "more", text: t("ledger.more"), onclick: () => load(true) }));
    } catch (err) {
      out.appendChild(notice("error", `${err.code || ""} ${err.message}`));
    }
  };
  box.appendChild(h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); load(false); } },
    campaignLabel, merchantLabel, voucherLabel, fromLabel, toLabel, h("button", { type: "submit", class: "primary", text: t("ledger.search") })));
  box.appendChild(out);
  await load(false);
}

function lookup(box, id, label, run) {
  const [l, input] = field(id, label, { size: 40 });
  const out = h("div", { id: `${id}-out` });
  box.appendChild(h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    clear(out);
    try {
      await run(input.value.trim(), out);
    } catch (err) {
      out.appendChild(notice("error", `${err.code || ""} ${err.message}`));
    }
  } }, l, h("button", { type: "submit", class: "primary", text: t("ledger.search") })));
  box.appendChild(out);
}

export async function render(main, [tab = "transactions"]) {
  main.appendChild(h("h1", { text: t("ledger.title") }));
  main.appendChild(h("div", { class: "tabs" }, TABS.map((name) =>
    link(`#/ledger/${name}`, t(`ledger.tab.${name}`), { class: name === tab ? "active" : null, "data-tab": name }))));
  const box = h("div", { class: "card" });
  main.appendChild(box);
  if (tab === "transactions") await transactions(box);
  if (tab === "statement") box.appendChild(statementForm());
  if (tab === "trace") {
    lookup(box, "trace", t("ledger.voucher_id"), async (id, out) => {
      const trace = await api(`/v1/ledger/vouchers/${encodeURIComponent(id)}/trace`);
      out.appendChild(h("p", { class: "muted" }, `${t("ledger.campaign_id")}: `, h("code", { text: trace.campaign_id || "—" })));
      out.appendChild(txTable(trace.items));
    });
  }
  if (tab === "account") {
    lookup(box, "account", t("ledger.account"), async (name, out) => {
      const account = await api(`/v1/ledger/accounts/${encodeURIComponent(name)}`);
      out.appendChild(h("p", {}, `${t("ledger.balance")}: `, h("strong", { "data-figure": "balance", text: yuan(account.balance_fen) })));
      out.appendChild(txTable(account.items));
    });
  }
  if (tab === "books") {
    lookup(box, "books", t("ledger.campaign_id"), async (id, out) => {
      const r = await api(`/v1/ledger/campaigns/${encodeURIComponent(id)}/reconciliation`);
      out.appendChild(notice(r.balanced ? "ok" : "error", r.balanced ? t("ledger.balanced") : t("ledger.unbalanced")));
      out.appendChild(h("p", { class: "mono", text: `${t("fig.funded")} ${yuan(r.funded_fen)} = ${t("fig.outstanding")} ${yuan(r.escrow_balance_fen)} + (${t("fig.redeemed")} ${yuan(r.redeemed_fen)} − ${t("fig.refunded")} ${yuan(r.refunded_fen)}) + ${t("fig.returned")} ${yuan(r.returned_fen)}` }));
      out.appendChild(table([
        { title: t("campaign.funder"), cell: (f) => f.funder },
        { title: t("ledger.account"), cell: (f) => h("code", { text: f.account }) },
        { title: t("fig.funded"), num: true, cell: (f) => yuan(f.funded_fen) },
        { title: t("fig.redeemed"), num: true, cell: (f) => yuan(f.redeemed_fen) },
        { title: t("fig.refunded"), num: true, cell: (f) => yuan(f.refunded_fen) },
        { title: t("fig.returned"), num: true, cell: (f) => yuan(f.returned_fen) },
        { title: t("fig.outstanding"), num: true, cell: (f) => yuan(f.escrow_balance_fen) },
      ], r.funders));
    });
  }
}
