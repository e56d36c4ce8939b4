// Risk flags (风险核查): the list with its filters, one flag's evidence and the redemptions it names, and the
// decision — clear or confirm — for the campaign's government and the operator. Auditors read only.
import { all, api } from "../api.js";
import { clear, h, link, notice, table } from "../dom.js";
import { t } from "../i18n.js";
import { when, yuan } from "../format.js";

const STATUSES = ["open", "cleared", "confirmed"];
const DECIDERS = ["gov", "admin"];

function chip(kind, value, attrs = {}) {
  const tone = { open: "pending", hold: "pending", cleared: "approved", flag: "draft", confirmed: "declined", refuse: "declined" }[value];
  return h("span", { class: `status ${tone || ""}`, text: t(`risk.${kind}.${value}`), ...attrs });
}

function signalName(signal) {
  const name = t(`risk.signal.${signal}`);
  return name === `risk.signal.${signal}` ? signal : `${name} (${signal})`;
}

// An evidence figure as a person reads it: money in yuan, everything else as its own text.
function figureText(key, value) {
  if (value === null || value === undefined) return "—";
  if (key.endsWith("_fen") && Number.isInteger(value)) return yuan(value);
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export async function render(main, [flagId], { me }) {
  if (flagId) return detail(main, flagId, me);
  main.appendChild(h("h1", { text: t("risk.title") }));
  main.appendChild(h("p", { class: "muted", text: me.role === "auditor" ? `${t("risk.help")} ${t("risk.help_auditor")}` : t("risk.help") }));
  const campaign = h("input", { id: "rf-campaign", size: 26 });
  const merchant = h("input", { id: "rf-merchant", size: 18 });
  const status = h("select", { id: "rf-status" }, h("option", { value: "", text: t("risk.all") }),
    STATUSES.map((s) => h("option", { value: s, text: t(`risk.status.${s}`) })));
  const list = h("div", { id: "flag-list" });
  const load = async () => {
    clear(list);
    try {
      const items = await all("/v1/risk/flags", { campaign_id: campaign.value.trim(), merchant_id: merchant.value.trim(), status: status.value }, 500);
      list.appendChild(table([
        { title: t("risk.opened"), cell: (f) => when(f.opened_at) },
        { title: t("risk.signal"), cell: (f) => signalName(f.signal) },
        { title: t("risk.outcome"), cell: (f) => chip("outcome", f.outcome) },
        { title: t("risk.merchant"), cell: (f) => h("code", { text: f.merchant_id || "—" }) },
        { title: t("risk.campaign"), cell: (f) => h("code", { text: f.campaign_id || "—" }) },
        { title: t("risk.redemptions"), num: true, cell: (f) => String(f.redemption_ids.length) },
        { title: t("risk.status"), cell: (f) => chip("status", f.status, { "data-flag-status": f.id }) },
        { title: "", cell: (f) => link(`#/risk/${encodeURIComponent(f.id)}`, t("risk.open_flag"), { "data-flag": f.id }) },
      ], items, { empty: t("risk.none") }));
      list.setAttribute("data-count", String(items.length));
    } catch (err) {
      list.appendChild(notice("error", `${err.code || ""} ${err.message}`));
    }
  };
  main.appendChild(h("form", { class: "card row", id: "flag-filters", onsubmit: async (e) => { e.preventDefault(); await load(); } },
    h("label", {}, t("risk.campaign"), campaign), h("label", {}, t("risk.merchant"), merchant), h("label", {}, t("risk.status"), status),
    h("button", { type: "submit", class: "primary", text: t("risk.filter") })));
  main.appendChild(list);
  await load();
}

// The ledger's transactions for the flag's redemptions (gov and auditors read the ledger; the operator does not).
async function redemptionRows(flag, me) {
  if (!["gov", "auditor"].includes(me.role) || !flag.campaign_id || !flag.redemption_ids.length) return null;
  const wanted = new Set(flag.redemption_ids);
  const query = { campaign_id: flag.campaign_id };
  if (flag.merchant_id) query.merchant_id = flag.merchant_id;
  const found = new Map();
  for (const tx of await all("/v1/ledger/transactions", query, 2000)) {
    const id = tx.refs && tx.refs.redemption_id;
    if (!wanted.has(id)) continue;
    const merchantLine = tx.postings.find((p) => p.account === `merchant:${tx.refs.merchant_id}`) || {};
    // Money into the merchant's account is its debit (API.md: an account's balance is money in minus money out).
    const amount = (merchantLine.debit_fen || 0) - (merchantLine.credit_fen || 0);
    if (!found.has(id)) found.set(id, []);
    found.get(id).push({ tx, amount });
  }
  return flag.redemption_ids.map((id) => ({ id, moves: found.get(id) || [] }));
}

function decisionBox(decision) {
  return h("div", { class: "card", id: "flag-decision", "data-decision": decision.decision },
    h("h3", { text: t("risk.decision") }),
    h("p", {}, chip("status", decision.decision === "confirm" ? "confirmed" : "cleared"), " ",
      `${t("risk.decided_by")} ${t(`role.${decision.role}`)} `, h("code", { text: decision.token_id }), ` · ${when(decision.decided_at)}`),
    decision.note ? h("p", { class: "mono", "data-note": "", text: decision.note }) : null,
    decision.clawback_ids && decision.clawback_ids.length
      ? h("p", {}, `${t("risk.clawbacks")}: `, h("code", { text: decision.clawback_ids.join(" ") })) : null,
    decision.released_hold ? h("p", { text: t("risk.released") }) : null);
}

async function detail(main, flagId, me) {
  const flag = await api(`/v1/risk/flags/${encodeURIComponent(flagId)}`);
  main.appendChild(h("p", {}, link("#/risk", `← ${t("risk.back")}`)));
  main.appendChild(h("h1", {}, signalName(flag.signal), " ", chip("status", flag.status, { "data-flag-status": flag.id })));
  main.appendChild(h("p", { class: "muted" }, h("code", { text: flag.id }), ` · ${t("risk.opened")} ${when(flag.opened_at)} · ${t("risk.outcome")} `,
    chip("outcome", flag.outcome), ` · ${t("risk.merchant")} `, h("code", { text: flag.merchant_id || "—" }),
    ` · ${t("risk.campaign")} `, flag.campaign_id ? link(`#/campaign/${encodeURIComponent(flag.campaign_id)}`, flag.campaign_id) : "—"));
  if (flag.hold_caused) main.appendChild(notice("info", t("risk.hold_caused")));

  const evidence = flag.evidence || {};
  main.appendChild(h("h2", { text: t("risk.evidence") }));
  if (evidence.rule) main.appendChild(h("p", {}, `${t("risk.rule")}: `, h("code", { "data-rule": "", text: evidence.rule })));
  main.appendChild(h("div", { id: "flag-evidence" }, table([
    { title: t("risk.figure"), cell: ([k]) => h("code", { text: k }) },
    { title: t("risk.value"), cell: ([k, v]) => h("span", { "data-evidence": k, text: figureText(k, v) }) },
  ], Object.entries(evidence).filter(([k]) => k !== "rule"))));

  main.appendChild(h("h2", { text: `${t("risk.redemptions")} (${flag.redemption_ids.length})` }));
  const rows = await redemptionRows(flag, me);
  if (rows === null) {
    if (me.role === "admin") main.appendChild(h("p", { class: "muted", text: t("risk.ids_only") }));
    main.appendChild(h("div", { id: "flag-redemptions" }, table([
      { title: t("risk.redemption"), cell: (id) => h("code", { "data-redemption": id, text: id }) },
    ], flag.redemption_ids)));
  } else {
    main.appendChild(h("div", { id: "flag-redemptions" }, table([
      { title: t("risk.redemption"), cell: (r) => h("code", { "data-redemption": r.id, text: r.id }) },
      { title: t("risk.at"), cell: (r) => (r.moves.length ? r.moves.map((m) => when(m.tx.at)).join(" / ") : t("risk.not_in_ledger")) },
      { title: t("risk.kind"), cell: (r) => r.moves.map((m) => t(`kind.${m.tx.kind}`)).join(" / ") },
      { title: t("risk.subsidy"), num: true, cell: (r) => h("span", { "data-subsidy": r.id, text: r.moves.map((m) => yuan(m.amount)).join(" / ") }) },
    ], rows)));
  }

  if (flag.decision) {
    main.appendChild(decisionBox(flag.decision));
  } else if (DECIDERS.includes(me.role) && flag.status === "open") {
    const note = h("textarea", { id: "flag-note", rows: 2, cols: 60, maxlength: 2000 });
    const out = h("div", { id: "flag-decide-out" });
    const decide = async (decision) => {
      if (decision === "confirm" && !window.confirm(t("risk.confirm_ask"))) return;
      clear(out);
      try {
        await api(`/v1/risk/flags/${encodeURIComponent(flag.id)}/decision`, { method: "POST", body: { decision, note: note.value.trim() || null } });
        await detail(clear(main), flagId, me);
      } catch (err) {
        out.appendChild(notice("error", `${err.code || ""} ${err.message}`));
      }
    };
    main.appendChild(h("div", { class: "card", id: "flag-decide" }, h("h3", { text: t("risk.decide") }),
      h("label", {}, t("risk.note"), note),
      h("div", { class: "row" },
        h("button", { type: "button", "data-decide": "clear", text: t("risk.clear"), onclick: () => decide("clear") }),
        h("button", { type: "button", class: "primary", "data-decide": "confirm", text: t("risk.confirm"), onclick: () => decide("confirm") })),
      out));
  }
}
