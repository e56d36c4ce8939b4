// Webhooks (事件推送) for the operator: subscriptions, their secret (shown once), and each delivery attempt.
import { all, api } from "../api.js";
import { clear, h, link, notice, table } from "../dom.js";
import { t } from "../i18n.js";
import { when } from "../format.js";

const EVENTS = [
  "campaign.funded", "campaign.activated", "campaign.closed", "redemption.settled", "refund.created",
  "clawback.created", "payout.sent", "payout.paid", "payout.failed", "risk.flag_opened",
];

export async function render(main, [webhookId]) {
  main.appendChild(h("h1", { text: t("webhooks.title") }));
  if (webhookId) return deliveries(main, webhookId);
  main.appendChild(h("p", { class: "muted", text: t("webhooks.help") }));
  const url = h("input", { id: "wh-url", size: 48, placeholder: "https://…" });
  const boxes = EVENTS.map((name) => h("input", { type: "checkbox", value: name, "data-event": name, checked: true }));
  const out = h("div", { id: "wh-out" });
  const list = h("div", { id: "webhook-list" });
  const refresh = async () => {
    const items = await all("/v1/webhooks", {}, 500);
    clear(list).appendChild(table([
      { title: "URL", cell: (w) => link(`#/webhooks/${encodeURIComponent(w.id)}`, w.url, { "data-webhook": w.id }) },
      { title: t("webhooks.events"), cell: (w) => h("code", { text: w.events.join(" ") }) },
      { title: t("webhooks.pending"), num: true, cell: (w) => String(w.pending) },
      { title: t("campaign.created"), cell: (w) => when(w.created_at) },
      { title: "", cell: (w) => h("button", { type: "button", "data-delete": w.id, text: t("webhooks.delete"), onclick: async () => {
        await api(`/v1/webhooks/${encodeURIComponent(w.id)}`, { method: "DELETE" });
        await refresh();
      } }) },
    ], items, { empty: t("webhooks.none") }));
  };
  const form = h("form", { class: "card", id: "webhook-form", onsubmit: async (e) => {
    e.preventDefault();
    clear(out);
    try {
      const made = await api("/v1/webhooks", { method: "POST", body: { url: url.value.trim(), events: boxes.filter((b) => b.checked).map((b) => b.value) } });
      out.appendChild(h("div", { class: "secret" }, h("div", { text: t("webhooks.secret_once") }), h("code", { "data-secret": "webhook", text: made.secret })));
      await refresh();
    } catch (err) {
      out.appendChild(notice("error", `${err.code || ""} ${err.message}`));
    }
  } }, h("div", { class: "row" }, h("label", {}, "URL", url)),
  h("div", { class: "row" }, boxes.map((b) => h("label", { class: "check" }, b, b.value))),
  h("button", { type: "submit", class: "primary", text: t("webhooks.create") }));
  main.appendChild(form);
  main.appendChild(out);
  main.appendChild(list);
  await refresh();
}

async function deliveries(main, webhookId) {
  main.appendChild(h("p", {}, link("#/webhooks", `← ${t("webhooks.title")}`)));
  const items = await all(`/v1/webhooks/${encodeURIComponent(webhookId)}/deliveries`, {}, 1000);
  main.appendChild(h("div", { id: "delivery-list" }, table([
    { title: t("ledger.at"), cell: (d) => when(d.at) },
    { title: t("webhooks.event"), cell: (d) => h("code", { text: `${d.type} ${d.event_id}` }) },
    { title: t("webhooks.attempt"), num: true, cell: (d) => String(d.attempt) },
    { title: "HTTP", num: true, cell: (d) => (d.status_code === null ? "—" : String(d.status_code)) },
    { title: t("campaign.status"), cell: (d) => h("span", { class: `status ${d.outcome === "delivered" ? "approved" : d.outcome === "failed" ? "declined" : "pending"}`, text: t(`webhooks.outcome.${d.outcome}`) }) },
    { title: "", cell: (d) => d.error || "" },
  ], items, { empty: t("webhooks.no_deliveries") })));
}
