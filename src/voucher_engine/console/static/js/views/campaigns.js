// Campaigns: the list, and one campaign's money — figures, burn-down, region and category, leverage, fund flow.
import { all, api, ApiError } from "../api.js";
import { clear, figure, h, link, notice, table } from "../dom.js";
import { t, mccName, regionName } from "../i18n.js";
import { count, ratio, when, yuan } from "../format.js";
import * as charts from "../charts.js";
import { clawbackForm } from "./settlement.js";

export async function list(main, _params, { me }) {
  charts.disposeAll();
  main.appendChild(h("h1", { text: t("campaigns.title") }));
  const items = await all("/v1/campaigns");
  const shown = h("div", { id: "campaign-list" });
  shown.appendChild(table(([
    { title: t("campaign.name"), cell: (c) => link(`#/campaign/${encodeURIComponent(c.id)}`, c.name, { "data-campaign": c.id }) },
    { title: t("campaign.status"), cell: (c) => h("span", { class: `status ${c.status}`, text: t(`status.${c.status}`) }) },
    { title: t("campaign.issuer"), cell: (c) => regionName(c.issuer_region) },
    // Only a government has campaigns of its own and campaigns it co-funds; for an auditor the column says nothing.
    me.role === "gov" ? { title: t("campaign.own"), cell: (c) => (c.issuer_id !== me.issuer_id ? t("campaign.cofunded") : t("campaign.yours")) } : null,
    me.role === "gov" ? { title: t("approval.list_column"), cell: (c) => coFunding(c, me) } : null,
    { title: t("campaign.budget"), num: true, cell: (c) => yuan(c.budget_fen) },
    { title: t("campaign.quantity"), num: true, cell: (c) => count(c.quantity) },
    { title: t("campaign.created"), cell: (c) => when(c.created_at) },
  ]).filter(Boolean), items, { empty: t("campaigns.none") }));
  main.appendChild(shown);
  if (me.role === "gov") {
    main.appendChild(h("p", {}, link("#/editor", t("campaigns.new"), { class: "button" })));
  }
}

// The list's co-funding column for a government: its own decision on a campaign it co-funds; on its own campaigns,
// what the co-funders have decided.
function coFunding(c, me) {
  const funders = c.funders || [];
  const mine = funders.find((f) => f.issuer_id === me.issuer_id && f.approval !== "own");
  if (mine) {
    const waiting = mine.approval === "pending" && c.status === "draft";
    return h("span", { class: `status ${mine.approval}`, "data-my-approval": c.id, text: waiting ? t("approval.awaiting") : t(`approval.${mine.approval}`) });
  }
  const others = funders.filter((f) => f.approval !== "own");
  if (!others.length) return "";
  const count = (approval) => others.filter((f) => f.approval === approval).length;
  const [kind, text] = count("declined") ? ["declined", t("approval.others_declined", { n: count("declined") })]
    : count("pending") ? ["pending", t("approval.others_pending", { n: count("pending") })]
    : ["approved", t("approval.all_approved")];
  return h("span", { class: `status ${kind}`, "data-cofunders": c.id, text });
}

// Each funder's part of what was funded: as the API gives it, else by share (round down, leftover to the first).
function fundedByFunder(campaign) {
  const funded = (campaign.totals && campaign.totals.funded_fen) || 0;
  const funders = campaign.funders || [];
  if (funders.length && funders.every((f) => Number.isInteger(f.amount_fen))) {
    return funded ? funders.map((f) => [f.region_code, f.amount_fen]) : [];
  }
  const parts = funders.map((f) => [f.region_code, Math.floor((funded * f.share_bp) / 10000)]);
  if (parts.length) parts[0][1] += funded - parts.reduce((s, [, v]) => s + v, 0);
  return parts;
}

function chartCard(title, id, total) {
  const el = h("div", { class: "chart", id: `chart-${id}` });
  const card = h("div", { class: "card" }, h("h3", { text: title }), el,
    total ? h("div", { class: "chart-total", "data-figure": `${id}-total` }, total) : null);
  return { card, el };
}

function lifecycle(campaign, me, rerender) {
  if (me.role !== "gov" || campaign.issuer_id !== me.issuer_id) return null;
  const moves = { draft: ["fund"], funded: ["activate", "close"], active: ["pause", "close"], paused: ["activate", "close"] };
  const box = h("div", { class: "row" });
  const message = h("div");
  for (const action of moves[campaign.status] || []) {
    box.appendChild(h("button", {
      type: "button", "data-action": action, class: action === "close" ? null : "primary", text: t(`action.${action}`),
      onclick: async () => {
        if (action === "close" && !window.confirm(t("action.close_confirm"))) return;
        try {
          await api(`/v1/campaigns/${encodeURIComponent(campaign.id)}/${action}`, { method: "POST" });
          await rerender();
        } catch (err) {
          clear(message).appendChild(notice("error", `${err.code || ""} ${err.message}`));
        }
      },
    }));
  }
  return h("div", {}, box, message);
}

// Each funder's share and its consent; the co-funder's government approves or declines its own share here while
// the campaign is a draft (POST /v1/campaigns/{id}/funders/{issuer_id}/approve|decline), and every decision is listed.
function funders(campaign, flows, me, rerender) {
  const box = h("div", { id: "funders" }, h("h2", { text: t("campaign.funders") }));
  const mine = (campaign.funders || []).find((f) => me.role === "gov" && f.issuer_id === me.issuer_id && f.approval !== "own");
  const out = h("div", { id: "approval-out" });
  const decide = async (action) => {
    clear(out);
    try {
      await api(`/v1/campaigns/${encodeURIComponent(campaign.id)}/funders/${encodeURIComponent(me.issuer_id)}/${action}`, { method: "POST" });
      await rerender();
    } catch (err) {
      out.appendChild(notice("error", `${err.code || ""} ${err.message}`));
    }
  };
  if (mine && campaign.status === "draft") {
    box.appendChild(h("div", { class: "card", id: "approval" }, h("h3", { text: t("approval.title") }),
      h("p", { text: t("approval.yours", { region: `${regionName(mine.region_code)} ${mine.region_code}`, amount: yuan(mine.amount_fen), share: `${(mine.share_bp / 100).toFixed(2)}%` }) }),
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary", "data-approve": mine.issuer_id, disabled: mine.approval === "approved", text: t("approval.approve"), onclick: () => decide("approve") }),
        h("button", { type: "button", "data-decline": mine.issuer_id, disabled: mine.approval === "declined", text: t("approval.decline"), onclick: () => decide("decline") })),
      out));
  } else if (mine) {
    box.appendChild(notice("info", t("approval.final")));
  }
  box.appendChild(table([
    { title: t("campaign.funder"), cell: (f) => `${regionName(f.region_code)} (${f.region_code})` },
    { title: t("campaign.share"), num: true, cell: (f) => `${(f.share_bp / 100).toFixed(2)}%` },
    { title: t("campaign.budget"), num: true, cell: (f) => yuan(f.amount_fen) },
    { title: t("approval.column"), cell: (f) => h("span", { class: `status ${f.approval}`, "data-approval": f.issuer_id, text: t(`approval.${f.approval}`) }) },
    { title: t("approval.decided_at"), cell: (f) => (f.decided_at ? when(f.decided_at) : "") },
    { title: t("campaign.funded_part"), num: true, cell: (f) => yuan((flows.find(([r]) => r === f.region_code) || [null, 0])[1]) },
  ], campaign.funders || []));
  const decisions = campaign.funder_decisions || [];
  if (decisions.length) {
    box.appendChild(h("h3", { text: t("approval.history") }));
    box.appendChild(h("div", { id: "approval-history" }, table([
      { title: t("approval.decided_at"), cell: (d) => when(d.decided_at) },
      { title: t("campaign.funder"), cell: (d) => h("code", { text: d.issuer_id }) },
      { title: t("approval.column"), cell: (d) => h("span", { class: `status ${d.decision}`, "data-decision": d.decision, text: t(`approval.${d.decision}`) }) },
      { title: t("approval.token"), cell: (d) => h("code", { text: d.token_id }) },
    ], decisions)));
  }
  return box;
}

export async function detail(main, [id], ctx) {
  charts.disposeAll();
  const path = `/v1/campaigns/${encodeURIComponent(id)}`;
  const [campaign, stats] = await Promise.all([api(path), api(`${path}/stats`, { query: { bucket: "day" } })]);
  const totals = campaign.totals || {};
  main.appendChild(h("p", {}, link("#/campaigns", `← ${t("campaigns.title")}`)));
  main.appendChild(h("h1", {}, campaign.name, " ", h("span", { class: `status ${campaign.status}`, "data-status": campaign.status, text: t(`status.${campaign.status}`) })));
  main.appendChild(h("p", { class: "muted" }, `${t("campaign.id")} `, h("code", { text: campaign.id }), ` · SHA-256 `, h("code", { text: campaign.contract_sha256 })));
  const rerender = async () => detail(clear(main), [id], ctx);
  const moves = lifecycle(campaign, ctx.me, rerender);
  if (moves) main.appendChild(moves);
  const flows = fundedByFunder(campaign);
  // A draft has no money to draw yet: what it waits for — the co-funders' consent — comes first.
  if (campaign.status === "draft") main.appendChild(funders(campaign, flows, ctx.me, rerender));

  const redeemedNet = (totals.redeemed_fen || 0) - (totals.refunded_fen || 0) - (totals.clawed_back_fen || 0);
  main.appendChild(h("div", { class: "cards" },
    figure(t("fig.budget"), yuan(campaign.budget_fen), "budget"),
    figure(t("fig.funded"), yuan(totals.funded_fen), "funded"),
    figure(t("fig.redeemed"), yuan(totals.redeemed_fen), "redeemed"),
    figure(t("fig.refunded"), yuan(totals.refunded_fen), "refunded"),
    totals.clawed_back_fen !== undefined ? figure(t("fig.clawed_back"), yuan(totals.clawed_back_fen), "clawed-back") : null,
    figure(t("fig.returned"), yuan(totals.returned_fen), "returned"),
    figure(t("fig.outstanding"), yuan(totals.outstanding_fen), "outstanding"),
    figure(t("fig.burn"), totals.funded_fen ? `${ratio(redeemedNet * 100, totals.funded_fen)}%` : "—", "burn"),
    figure(t("fig.vouchers"), `${count(totals.vouchers_redeemed)} / ${count(totals.vouchers_issued)}`, "vouchers"),
    figure(t("fig.leverage"), stats.leverage.ratio, "leverage")));

  const days = stats.buckets;
  const sum = (rows, field) => rows.reduce((s, r) => s + (r[field] || 0), 0);
  const start = totals.funded_fen || campaign.budget_fen;
  const net = sum(days, "redeemed_fen") - sum(days, "refunded_fen") - sum(days, "clawed_back_fen");
  const burn = chartCard(t("chart.burn_down"), "burn-down",
    `${t("chart.total_redeemed")} ${yuan(sum(days, "redeemed_fen"))} · ${t("chart.total_refunded")} ${yuan(sum(days, "refunded_fen"))} · ${t("chart.remaining")} ${yuan(start - net)}`);
  const region = chartCard(t("chart.by_region"), "region", `${t("chart.total_redeemed")} ${yuan(sum(stats.by_region, "redeemed_fen"))} · ${count(sum(stats.by_region, "redemptions"))} ${t("chart.redemptions")}`);
  const mcc = chartCard(t("chart.by_mcc"), "mcc", `${t("chart.total_redeemed")} ${yuan(sum(stats.by_mcc, "redeemed_fen"))} · ${count(sum(stats.by_mcc, "redemptions"))} ${t("chart.redemptions")}`);
  const lev = chartCard(t("chart.leverage"), "leverage",
    `${t("chart.orders")} ${yuan(stats.leverage.order_amount_fen)} · ${t("chart.subsidy")} ${yuan(stats.leverage.subsidy_fen)} · ${t("fig.leverage")} ${stats.leverage.ratio}`);
  const flow = chartCard(t("chart.fund_flow"), "fund-flow", `${t("fig.funded")} ${yuan(totals.funded_fen)} · ${t("flow.merchants")} ${yuan(totals.redeemed_fen)} · ${t("flow.returned")} ${yuan(totals.returned_fen)}`);
  main.appendChild(h("div", { class: "grid2" }, burn.card, lev.card, region.card, mcc.card));
  main.appendChild(flow.card);
  main.appendChild(h("p", { class: "muted", "data-figure": "as-of" },
    t("stats.as_of", { seq: stats.as_of.ledger_seq, head: stats.as_of.ledger_head_seq, at: when(stats.as_of.updated_at) })));
  if (!days.length) {
    for (const c of [burn, region, mcc, lev]) c.el.replaceWith(notice("info", t("stats.none")));
  } else {
    charts.draw(burn.el, charts.burnDown(days, start));
    charts.draw(region.el, charts.bars(stats.by_region, "region_code", regionName));
    charts.draw(mcc.el, charts.bars(stats.by_mcc, "mcc", mccName));
    charts.draw(lev.el, charts.leverage(days));
  }
  if (flows.length) charts.draw(flow.el, charts.fundFlow(campaign, flows));
  else flow.el.replaceWith(notice("info", t("flow.unfunded")));

  if (ctx.me.role === "gov" && campaign.issuer_id === ctx.me.issuer_id && campaign.status !== "draft") {
    main.appendChild(clawbackForm());
  }
  if (campaign.status !== "draft") main.appendChild(funders(campaign, flows, ctx.me, rerender));
  main.appendChild(h("h2", { text: t("campaign.terms") }));
  main.appendChild(h("pre", { class: "card mono", text: JSON.stringify({ validity: campaign.validity, terms: campaign.terms }, null, 2) }));
  if (campaign.contract_source) {
    main.appendChild(h("details", { class: "card" }, h("summary", { text: t("campaign.contract") }), h("pre", { class: "mono", text: campaign.contract_source })));
  }
}

export { ApiError };
