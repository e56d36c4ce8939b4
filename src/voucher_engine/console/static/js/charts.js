// Charts with Apache ECharts (bundled in /console/vendor, nothing from another host). SVG renderer, so that the
// figures drawn are text in the page; tooltips drawn by ECharts itself (richText), never as HTML.
import * as echarts from "../vendor/echarts/echarts.esm.min.mjs";
import { t } from "./i18n.js";
import { yuan } from "./format.js";

const live = new Set();
window.addEventListener("resize", () => live.forEach((chart) => chart.resize()));

export function draw(el, option) {
  const chart = echarts.init(el, null, { renderer: "svg", locale: "ZH" });
  chart.setOption({
    animation: false,
    color: ["#c8102e", "#1456f0", "#1a7f37", "#9a6700", "#8250df", "#0e7490", "#b35900"],
    tooltip: { renderMode: "richText", trigger: option.series && option.series[0].type === "sankey" ? "item" : "axis" },
    grid: { left: 72, right: 24, top: 36, bottom: 40 },
    ...option,
  });
  live.add(chart);
  el.setAttribute("data-chart-ready", "1");
  return chart;
}

export function disposeAll() {
  live.forEach((chart) => chart.dispose());
  live.clear();
}

const money = (fen) => yuan(Math.round(fen));
const axisMoney = { type: "value", axisLabel: { formatter: (v) => yuan(v).replace(/\.00$/, "") } };

export function burnDown(days, startFen) {
  let left = startFen;
  const remaining = [];
  const spent = [];
  for (const b of days) {
    const net = b.redeemed_fen - b.refunded_fen - (b.clawed_back_fen || 0);
    left -= net;
    spent.push(net);
    remaining.push(left);
  }
  // Two scales: the day's spend is small beside the budget, and would vanish on the remaining-money axis.
  return {
    legend: { bottom: 0, data: [t("chart.spent_per_day"), t("chart.remaining")] },
    grid: { left: 72, right: 96, top: 40, bottom: 56 },
    xAxis: { type: "category", data: days.map((b) => b.start.slice(0, 10)) },
    yAxis: [{ ...axisMoney, name: t("chart.spent_per_day") }, { ...axisMoney, name: t("chart.remaining"), position: "right", scale: true, splitLine: { show: false } }],
    series: [
      { name: t("chart.spent_per_day"), type: "bar", data: spent, label: { show: days.length <= 14, position: "top", formatter: (p) => money(p.value) } },
      { name: t("chart.remaining"), type: "line", yAxisIndex: 1, data: remaining, symbolSize: 6 },
    ],
  };
}

export function bars(rows, key, nameOf) {
  const sorted = [...rows].sort((a, b) => a.redeemed_fen - b.redeemed_fen);
  return {
    grid: { left: 140, right: 110, top: 16, bottom: 24 },
    xAxis: { ...axisMoney, show: false },
    yAxis: { type: "category", data: sorted.map((r) => nameOf(r[key])) },
    series: [{
      name: t("chart.redeemed"), type: "bar", data: sorted.map((r) => r.redeemed_fen),
      label: { show: true, position: "right", formatter: (p) => money(p.value) },
    }],
  };
}

export function leverage(days) {
  let order = 0n;
  let subsidy = 0n;
  const ratios = [];
  for (const b of days) {
    order += BigInt(b.order_amount_fen - (b.order_refunded_fen || 0));
    subsidy += BigInt(b.redeemed_fen - b.refunded_fen - (b.clawed_back_fen || 0));
    ratios.push(subsidy > 0n ? Number((order * 100n) / subsidy) / 100 : 0);
  }
  return {
    xAxis: { type: "category", data: days.map((b) => b.start.slice(0, 10)) },
    yAxis: { type: "value", name: t("chart.ratio_axis"), min: 0 },
    series: [{ name: t("chart.leverage"), type: "line", data: ratios, symbolSize: 6,
      label: { show: days.length <= 14, position: "top", formatter: (p) => p.value.toFixed(2) } }],
  };
}

// fiscal → escrow → merchants → (kept, refunded back, clawed back); escrow → returned, still in escrow.
// A Sankey diagram cannot have cycles, so money that flows back into escrow is drawn as a flow out of the
// merchants into a node of its own ("back to escrow") instead of a loop.
export function fundFlow(campaign, fundedByFunder) {
  const totals = campaign.totals || {};
  const links = [];
  const nodes = new Map();
  const add = (source, target, value) => {
    if (!value || value <= 0) return;
    nodes.set(source, true);
    nodes.set(target, true);
    links.push({ source, target, value });
  };
  const escrow = t("flow.escrow");
  const merchants = t("flow.merchants");
  for (const [region, fen] of fundedByFunder) add(`${t("flow.fiscal")} ${region}`, escrow, fen);
  add(escrow, merchants, totals.redeemed_fen);
  add(escrow, t("flow.returned"), totals.returned_fen);
  add(escrow, t("flow.outstanding"), totals.outstanding_fen);
  add(merchants, t("flow.refunded"), totals.refunded_fen);
  add(merchants, t("flow.clawed_back"), totals.clawed_back_fen);
  const kept = (totals.redeemed_fen || 0) - (totals.refunded_fen || 0) - (totals.clawed_back_fen || 0);
  add(merchants, t("flow.kept"), kept);
  return {
    series: [{
      type: "sankey", left: 8, right: 150, top: 16, bottom: 16, nodeWidth: 14, nodeGap: 14, layoutIterations: 0,
      emphasis: { focus: "adjacency" }, lineStyle: { color: "gradient", opacity: 0.4 },
      label: { formatter: (p) => `${p.name}\n${money(p.value)}` },
      data: [...nodes.keys()].map((name) => ({ name })), links,
    }],
  };
}
