// The operator's views (平台运营): issuers, merchants and their POS keys, tokens.
import { all, api } from "../api.js";
import { clear, h, notice, table } from "../dom.js";
import { t, mccName, regionName } from "../i18n.js";
import { when, yuan } from "../format.js";
import { clawbackForm, hold, statementForm } from "./settlement.js";

function form(id, fields, submitText, onSubmit) {
  const inputs = {};
  const out = h("div", { id: `${id}-out` });
  const el = h("form", { class: "row", id }, fields.map(([name, label, attrs = {}]) => {
    const input = attrs.options
      ? h("select", { id: `${id}-${name}` }, attrs.options.map(([value, text]) => h("option", { value, text })))
      : h("input", { id: `${id}-${name}`, ...attrs });
    inputs[name] = input;
    return h("label", {}, label, input);
  }), h("button", { type: "submit", class: "primary", text: submitText }));
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(out);
    const values = Object.fromEntries(Object.entries(inputs).map(([k, input]) => [k, input.value.trim()]));
    try {
      await onSubmit(values, out);
    } catch (err) {
      out.appendChild(notice("error", `${err.code || ""} ${err.message}`));
    }
  });
  return h("div", { class: "card" }, el, out);
}

function secret(label, value, testId) {
  return h("div", { class: "secret" }, h("div", { text: label }), h("code", { "data-secret": testId, text: value }));
}

export async function issuers(main) {
  main.appendChild(h("h1", { text: t("issuers.title") }));
  const list = h("div", { id: "issuer-list" });
  const refresh = async () => {
    const items = await all("/v1/issuers");
    clear(list).appendChild(table([
      { title: t("issuers.name"), cell: (i) => i.name },
      { title: t("issuers.region"), cell: (i) => `${regionName(i.region_code)} (${i.region_code})` },
      { title: "id", cell: (i) => h("code", { text: i.id }) },
      { title: t("issuers.fiscal"), cell: (i) => h("code", { text: i.fiscal_account }) },
      { title: t("issuers.appropriation"), num: true, cell: (i) => (i.appropriation_fen === null || i.appropriation_fen === undefined ? t("issuers.no_limit") : yuan(i.appropriation_fen)) },
      { title: t("issuers.committed"), num: true, cell: (i) => h("span", { "data-committed": i.id, text: yuan(i.committed_fen || 0) }) },
      { title: t("campaign.created"), cell: (i) => when(i.created_at) },
    ], items));
  };
  main.appendChild(form("issuer-form", [["name", t("issuers.name")], ["region_code", t("issuers.region"), { size: 8, placeholder: "310000" }]],
    t("issuers.create"), async (values, out) => {
      const made = await api("/v1/issuers", { method: "POST", body: values });
      out.appendChild(notice("ok", `${t("issuers.created")} ${made.id}`));
      await refresh();
    }));
  main.appendChild(form("appropriation-form", [["issuer", "id", { placeholder: "iss_310000" }], ["yuan", t("issuers.appropriation_yuan"), { placeholder: t("issuers.empty_no_limit") }]],
    t("issuers.set_appropriation"), async (values, out) => {
      if (values.yuan && !/^\d+(\.\d{1,2})?$/.test(values.yuan)) throw new Error(t("sample.bad_amount"));
      const [whole, cents = ""] = values.yuan.split(".");
      const fen = values.yuan ? Number(BigInt(whole) * 100n + BigInt(cents.padEnd(2, "0"))) : null;
      await api(`/v1/issuers/${encodeURIComponent(values.issuer)}`, { method: "PATCH", body: { appropriation_fen: fen } });
      out.appendChild(notice("ok", `${t("issuers.appropriation_set")} ${fen === null ? t("issuers.no_limit") : yuan(fen)}`));
      await refresh();
    }));
  main.appendChild(list);
  await refresh();
}

export async function merchants(main) {
  main.appendChild(h("h1", { text: t("merchants.title") }));
  const list = h("div", { id: "merchant-list" });
  const keyOut = h("div", { id: "key-out" });
  const refresh = async () => {
    const items = await all("/v1/merchants");
    clear(list).appendChild(table([
      { title: "id", cell: (m) => h("code", { text: m.id }) },
      { title: t("merchants.name"), cell: (m) => m.name },
      { title: t("merchants.mcc"), cell: (m) => `${m.mcc} ${mccName(m.mcc)}` },
      { title: t("issuers.region"), cell: (m) => `${regionName(m.region_code)} (${m.region_code})` },
      { title: t("merchants.tags"), cell: (m) => m.tags.join(", ") },
      { title: t("campaign.status"), cell: (m) => h("span", { class: `status ${m.status}`, text: t(`mstatus.${m.status}`) }) },
      { title: t("merchants.hold"), cell: (m) => (m.payout_hold
        ? h("span", { class: "status declined", "data-hold": m.id, text: `${m.payout_hold.reason} · ${when(m.payout_hold.since)}` })
        : "—") },
      { title: "", cell: (m) => h("div", { class: "row" },
        h("button", { type: "button", "data-merchant-action": m.status === "active" ? "suspend" : "resume", text: t(m.status === "active" ? "merchants.suspend" : "merchants.resume"),
          onclick: async () => { await api(`/v1/merchants/${encodeURIComponent(m.id)}/${m.status === "active" ? "suspend" : "resume"}`, { method: "POST" }); await refresh(); } }),
        h("button", { type: "button", "data-hold-action": m.id, text: t(m.payout_hold ? "merchants.release" : "merchants.hold_button"),
          onclick: async () => {
            const reason = m.payout_hold ? "" : window.prompt(t("merchants.hold_reason"));
            if (reason === null) return;
            await hold(m.id, Boolean(m.payout_hold), reason);
            await refresh();
          } }),
        h("button", { type: "button", "data-new-key": m.id, text: t("merchants.new_key"), onclick: async () => {
          const key = await api(`/v1/merchants/${encodeURIComponent(m.id)}/keys`, { method: "POST" });
          clear(keyOut).appendChild(h("div", { class: "card" }, h("h3", { text: `${t("merchants.key_for")} ${m.id}` }),
            secret("key_id", key.key_id, "key-id"), secret(t("merchants.secret_once"), key.secret, "key-secret")));
        } })) },
    ], items));
  };
  main.appendChild(form("merchant-form", [
    ["id", "id", { placeholder: "xuhui-noodles" }], ["name", t("merchants.name")], ["mcc", t("merchants.mcc"), { size: 5, placeholder: "5812" }],
    ["region_code", t("issuers.region"), { size: 8, placeholder: "310104" }], ["settlement_wallet", t("merchants.wallet"), { size: 18 }],
    ["tags", t("merchants.tags"), { placeholder: "ecny-signed, …" }],
  ], t("merchants.save"), async (values, out) => {
    const { id, tags, ...rest } = values;
    await api(`/v1/merchants/${encodeURIComponent(id)}`, { method: "PUT", body: { ...rest, tags: tags.split(",").map((s) => s.trim()).filter(Boolean) } });
    out.appendChild(notice("ok", `${t("merchants.saved")} ${id}`));
    await refresh();
  }));
  main.appendChild(form("revoke-form", [["merchant", t("merchants.merchant_id")], ["key_id", "key_id"]], t("merchants.revoke"), async (values, out) => {
    await api(`/v1/merchants/${encodeURIComponent(values.merchant)}/keys/${encodeURIComponent(values.key_id)}`, { method: "DELETE" });
    out.appendChild(notice("ok", t("merchants.revoked")));
  }));
  main.appendChild(keyOut);
  main.appendChild(list);
  main.appendChild(statementForm());
  main.appendChild(clawbackForm());
  await refresh();
}

export async function tokens(main) {
  main.appendChild(h("h1", { text: t("tokens.title") }));
  main.appendChild(h("p", { class: "muted", text: t("tokens.help") }));
  const issuerOptions = (await all("/v1/issuers")).map((i) => [i.id, `${i.name} (${i.region_code})`]);
  main.appendChild(form("token-form", [
    ["role", t("tokens.role"), { options: [["gov", t("role.gov")], ["auditor", t("role.auditor")], ["admin", t("role.admin")]] }],
    ["issuer_id", t("tokens.issuer"), { options: [["", t("tokens.no_issuer")], ...issuerOptions] }],
  ], t("tokens.create"), async (values, out) => {
    const body = { role: values.role };
    if (values.issuer_id) body.issuer_id = values.issuer_id;
    const made = await api("/v1/tokens", { method: "POST", body });
    out.appendChild(secret(`${t("tokens.once")} (${t(`role.${made.role}`)}, id ${made.id})`, made.token, "token"));
    await refresh();
  }));
  const list = h("div", { id: "token-list" });
  const refresh = async () => {
    const items = await all("/v1/tokens", {}, 1000);
    clear(list).appendChild(table([
      { title: "id", cell: (k) => h("code", { text: k.id }) },
      { title: t("tokens.role"), cell: (k) => t(`role.${k.role}`) },
      { title: t("tokens.issuer"), cell: (k) => k.issuer_id || "—" },
      { title: t("campaign.created"), cell: (k) => when(k.created_at) },
      { title: t("tokens.last_used"), cell: (k) => when(k.last_used_at) },
      { title: t("tokens.revoked"), cell: (k) => (k.revoked_at ? h("span", { class: "status declined", "data-revoked": k.id, text: when(k.revoked_at) }) : "—") },
      { title: "", cell: (k) => (k.revoked_at ? "" : h("button", { type: "button", "data-revoke": k.id, text: t("tokens.revoke"), onclick: async () => {
        if (!window.confirm(t("tokens.revoke_confirm"))) return;
        await api(`/v1/tokens/${encodeURIComponent(k.id)}`, { method: "DELETE" });
        await refresh();
      } })) },
    ], items));
  };
  main.appendChild(list);
  await refresh();
}
