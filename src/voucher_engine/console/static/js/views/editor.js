// The contract editor: checks as one types (debounced), marks each error at its line and column, explains a
// sample payment, and creates the campaign from the text.
import { api, ApiError } from "../api.js";
import { clear, h, notice, table } from "../dom.js";
import { t } from "../i18n.js";
import { yuan } from "../format.js";

const DEBOUNCE_MS = 350;
const STARTER = `# 示例：餐饮满减券 Sample: dining vouchers, spend ¥100 get ¥20 off
campaign "Dining vouchers" issuer {REGION}

budget ¥1,000,000
funders {
    {REGION}: 100%
}

voucher threshold: spend ¥100, get ¥20 off
quantity 50,000
limit 1 per holder
distribution targeted

valid from 2025-01-01 00:00 to 2025-12-31 23:59 China time

holder {
    age >= 18
}

payment {
    merchant.mcc in {"5812", "5813", "5814"}
}
`;

export async function render(main, _params, { me }) {
  main.appendChild(h("h1", { text: t("editor.title") }));
  main.appendChild(h("p", { class: "muted", text: t("editor.help") }));
  const gutter = h("div", { class: "gutter", id: "gutter" });
  const marks = h("div", { class: "marks" });
  const text = h("textarea", { id: "source", spellcheck: "false", autocomplete: "off", "aria-label": t("editor.source"), wrap: "off" });
  text.value = STARTER.replaceAll("{REGION}", me.issuer_region || "310000");
  const editor = h("div", { class: "editor" }, gutter, h("div", { class: "body" }, marks, text));
  const state = h("div", { id: "check-state", "data-state": "idle" });
  const diagnostics = h("div", { id: "diagnostics" });
  const create = h("button", { type: "button", class: "primary", id: "create", disabled: true, text: t("editor.create") });
  const created = h("div", { id: "created" });
  main.appendChild(h("div", { class: "grid2" },
    h("div", {}, editor, h("div", { class: "row" }, state, create), created),
    h("div", {}, h("div", { class: "card" }, h("h3", { text: t("editor.diagnostics") }), diagnostics), sampleForm(text))));

  let sequence = 0;
  let timer = null;
  const lines = () => text.value.split("\n").length;
  const paint = (bad) => {
    const n = lines();
    clear(gutter);
    clear(marks);
    for (let i = 1; i <= n; i += 1) {
      gutter.appendChild(h("div", { class: bad.has(i) ? "bad" : null, "data-line": i, text: i }));
      marks.appendChild(h("div", { class: bad.has(i) ? "bad" : null }));
    }
  };
  const goTo = (line, column) => {
    const starts = [0];
    for (let i = 0; i < text.value.length; i += 1) if (text.value[i] === "\n") starts.push(i + 1);
    const at = (starts[line - 1] || 0) + Math.max(0, column - 1);
    text.focus();
    text.setSelectionRange(at, at);
  };
  const check = async () => {
    const mine = ++sequence;
    state.setAttribute("data-state", "checking");
    state.textContent = t("editor.checking");
    let answer;
    let errors = [];
    let warnings = [];
    try {
      answer = await api("/v1/contracts/check", { method: "POST", body: { source: text.value } });
      warnings = answer.warnings || [];
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      errors = err.problem.errors || [{ line: 1, column: 1, message: err.message }];
      warnings = err.problem.warnings || [];
    }
    // The checker's warnings, as warnings, whether or not the contract also has errors.
    const showWarnings = () => {
      if (warnings.length) diagnostics.appendChild(h("ul", { class: "diagnostics warnings" }, warnings.map((w) => h("li", { class: "warning", "data-line": w.line, "data-column": w.column },
        h("a", { onclick: () => goTo(w.line, w.column), text: `${t("editor.warning")} ${t("editor.at", { line: w.line, column: w.column })}` }), " ", w.message))));
    };
    if (mine !== sequence) return; // a newer check is on its way
    paint(new Set(errors.map((e) => e.line)));
    clear(diagnostics);
    create.disabled = errors.length > 0 || me.role !== "gov";
    if (errors.length) {
      state.setAttribute("data-state", "invalid");
      state.className = "error";
      state.textContent = t("editor.errors", { n: errors.length });
      diagnostics.appendChild(h("ul", { class: "diagnostics" }, errors.map((e) => h("li", { "data-line": e.line, "data-column": e.column },
        h("a", { onclick: () => goTo(e.line, e.column), text: t("editor.at", { line: e.line, column: e.column }) }), " ", e.message))));
      showWarnings();
      return;
    }
    state.setAttribute("data-state", "ok");
    state.className = "ok";
    state.textContent = t("editor.ok");
    const s = answer.summary || {};
    diagnostics.appendChild(table([{ title: t("editor.field"), cell: (r) => r[0] }, { title: t("editor.value"), cell: (r) => r[1] }],
      Object.entries(s).filter(([, v]) => typeof v !== "object" || v === null).map(([k, v]) => [k, k.endsWith("_fen") ? yuan(v) : String(v)])));
    showWarnings();
  };
  text.addEventListener("input", () => {
    paint(new Set());
    state.setAttribute("data-state", "typing");
    state.className = "muted";
    state.textContent = t("editor.typing");
    clearTimeout(timer);
    timer = setTimeout(check, DEBOUNCE_MS);
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Tab") {
      event.preventDefault();
      text.setRangeText("    ", text.selectionStart, text.selectionEnd, "end");
      text.dispatchEvent(new Event("input"));
    }
  });
  create.addEventListener("click", async () => {
    clear(created);
    try {
      const campaign = await api("/v1/campaigns", { method: "POST", body: { source: text.value } });
      location.hash = `#/campaign/${encodeURIComponent(campaign.id)}`;
    } catch (err) {
      created.appendChild(notice("error", `${err.code || ""} ${err.message}`));
    }
  });
  paint(new Set());
  await check();
}

function sampleForm(text) {
  const mcc = h("input", { id: "sample-mcc", value: "5812", size: 6 });
  const region = h("input", { id: "sample-region", value: "310104", size: 8 });
  const tags = h("input", { id: "sample-tags", value: "", placeholder: "ecny-signed, …" });
  const at = h("input", { id: "sample-at", value: "2025-03-01T12:00:00+08:00", size: 26 });
  const amount = h("input", { id: "sample-amount", value: "120.00", size: 10 });
  const holder = h("textarea", { id: "sample-holder", rows: 2, cols: 40, value: '{"age": 30, "residence_region": "310104"}' });
  const out = h("div", { id: "sample-result" });
  const run = async () => {
    clear(out);
    const yuanText = amount.value.trim();
    if (!/^\d+(\.\d{1,2})?$/.test(yuanText)) {
      out.appendChild(notice("error", t("sample.bad_amount")));
      return;
    }
    const [whole, cents = ""] = yuanText.split(".");
    const payment = {
      merchant: { mcc: mcc.value.trim(), region_code: region.value.trim(), tags: tags.value.split(",").map((s) => s.trim()).filter(Boolean) },
      at: at.value.trim(),
      order_amount_fen: Number(BigInt(whole) * 100n + BigInt(cents.padEnd(2, "0"))),
    };
    let holderAttributes;
    try {
      holderAttributes = holder.value.trim() ? JSON.parse(holder.value) : undefined;
    } catch {
      out.appendChild(notice("error", t("sample.bad_holder")));
      return;
    }
    try {
      const a = await api("/v1/contracts/explain", { method: "POST", body: { source: text.value, payment, holder: holderAttributes } });
      out.appendChild(notice(a.eligible ? "ok" : "error", a.eligible
        ? t("sample.settles", { subsidy: yuan(a.subsidy_fen), payable: yuan(a.payable_fen) })
        : t("sample.refused", { code: a.code })));
      const failed = [...(a.holder_explain || []).map((f) => ({ ...f, who: t("sample.holder") })), ...a.explain.map((f) => ({ ...f, who: t("sample.payment") }))];
      if (failed.length) {
        out.appendChild(table([
          { title: t("sample.where"), cell: (f) => t("editor.at", { line: f.line, column: f.column }) },
          { title: t("sample.condition"), cell: (f) => h("code", { text: `${f.who}: ${f.rule}` }) },
          { title: t("sample.actual"), cell: (f) => JSON.stringify(f.actual) },
          { title: t("sample.expected"), cell: (f) => String(f.expected) },
        ], failed));
      }
    } catch (err) {
      out.appendChild(notice("error", `${err.code || ""} ${err.message}`));
    }
  };
  return h("div", { class: "card" }, h("h3", { text: t("sample.title") }),
    h("div", { class: "row" }, h("label", {}, t("sample.mcc"), mcc), h("label", {}, t("sample.region"), region), h("label", {}, t("sample.tags"), tags)),
    h("div", { class: "row" }, h("label", {}, t("sample.at"), at), h("label", {}, t("sample.amount"), amount)),
    h("div", { class: "row" }, h("label", {}, t("sample.holder_json"), holder)),
    h("div", { class: "row" }, h("button", { type: "button", id: "explain", onclick: run, text: t("sample.explain") })), out);
}
