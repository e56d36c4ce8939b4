// Verify (核验): check in this browser that a transaction is in the ledger the pinned key has signed.
// Every verdict here is computed from bytes: the server's answers are data, never a result.
import { api, ApiError } from "../api.js";
import { clear, h, notice } from "../dom.js";
import { t } from "../i18n.js";
import * as v from "../verify-core.js";

const PIN_KEY = "ve.pinnedKey"; // the auditor's pinned Ed25519 key (base64), kept in this browser

export function pinnedKey() {
  return localStorage.getItem(PIN_KEY);
}

async function pinPanel(onChange) {
  const current = pinnedKey();
  const input = h("input", { id: "pin-input", size: 52, placeholder: "base64 (32 bytes)", value: "" });
  const message = h("div");
  const box = h("div", { class: "card", id: "pin" }, h("h3", { text: t("verify.pinned") }));
  if (current) {
    let fp = "?";
    try {
      fp = await v.fingerprint(v.base64ToBytes(current));
    } catch {
      fp = t("verify.bad_key");
    }
    box.appendChild(h("p", {}, h("code", { id: "pinned-key", text: current }), " ", h("span", { class: "muted", text: `SHA-256 ${fp}…` })));
  } else {
    box.appendChild(notice("info", t("verify.no_pin")));
  }
  box.appendChild(h("p", { class: "muted", text: t("verify.pin_help") }));
  box.appendChild(h("div", { class: "row" }, input,
    h("button", { type: "button", id: "fetch-key", text: t("verify.fetch_key"), onclick: async () => {
      const k = await api("/v1/ledger/public-key");
      input.value = k.public_key;
      clear(message).appendChild(notice("info", `${t("verify.fetched")} SHA-256 ${await v.fingerprint(v.base64ToBytes(k.public_key))}…`));
    } }),
    h("button", { type: "button", class: "primary", id: "pin-button", text: t("verify.pin"), onclick: async () => {
      try {
        if (v.base64ToBytes(input.value).length !== 32) throw new Error();
      } catch {
        clear(message).appendChild(notice("error", t("verify.bad_key")));
        return;
      }
      localStorage.setItem(PIN_KEY, input.value.trim());
      await onChange();
    } }),
    current ? h("button", { type: "button", id: "unpin", text: t("verify.unpin"), onclick: async () => {
      localStorage.removeItem(PIN_KEY);
      await onChange();
    } }) : null));
  box.appendChild(message);
  return box;
}

// One run of the checks; `report(step)` shows each as it completes. Answers true when every step passed.
async function run(txId, report) {
  const fail = (key, detail) => { report({ key, pass: false, detail }); return false; };
  const pass = (key, detail) => report({ key, pass: true, detail });
  if (!globalThis.crypto || !crypto.subtle) return fail("verify.step.crypto", t("verify.no_subtle"));
  const pinned = pinnedKey();
  if (!pinned) return fail("verify.step.key", t("verify.no_pin"));
  const key = v.base64ToBytes(pinned);
  pass("verify.step.key", `SHA-256 ${await v.fingerprint(key)}…`);

  let latest = null;
  try {
    latest = await api("/v1/ledger/checkpoints/latest");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
  if (latest) {
    const ok = await v.verifyEd25519(key, v.base64ToBytes(latest.signature), v.utf8(latest.body));
    if (!ok) return fail("verify.step.latest", t("verify.sig_bad", { size: latest.tree_size }));
    pass("verify.step.latest", t("verify.sig_ok", { size: latest.tree_size, origin: latest.origin }));
  }

  const tx = await api(`/v1/ledger/transactions/${encodeURIComponent(txId)}`);
  const bytes = v.canonicalTransaction(tx);
  const leaf = await v.leafHash(bytes);
  const chained = v.bytesToHex(await v.chainHash(tx.prev_hash, bytes));
  if (chained !== tx.hash) return fail("verify.step.tx", t("verify.chain_bad", { seq: tx.seq }));
  pass("verify.step.tx", t("verify.tx_ok", { seq: tx.seq, kind: tx.kind, leaf: v.bytesToHex(leaf) }));

  const inLatest = latest && latest.tree_size >= tx.seq;
  const proof = await api(`/v1/ledger/transactions/${encodeURIComponent(txId)}/proof`, { query: inLatest ? { tree_size: latest.tree_size } : {} });
  const cp = proof.checkpoint;
  if (!inLatest) {
    const ok = await v.verifyEd25519(key, v.base64ToBytes(cp.signature), v.utf8(cp.body));
    if (!ok) return fail("verify.step.checkpoint", t("verify.sig_bad", { size: cp.tree_size }));
    pass("verify.step.checkpoint", t("verify.sig_ok", { size: cp.tree_size, origin: cp.origin }));
  }
  const signed = v.parseCheckpointBody(cp.body);
  if (signed.treeSize !== proof.tree_size || (inLatest && cp.body !== latest.body)) {
    return fail("verify.step.body", t("verify.body_bad"));
  }
  pass("verify.step.body", t("verify.body_ok", { size: signed.treeSize, root: v.bytesToHex(signed.root) }));

  if (proof.leaf_index !== tx.seq - 1 || proof.leaf_hash !== v.bytesToHex(leaf)) {
    return fail("verify.step.leaf", t("verify.leaf_bad", { index: proof.leaf_index }));
  }
  pass("verify.step.leaf", t("verify.leaf_ok", { index: proof.leaf_index }));

  let root;
  try {
    root = await v.rootFromInclusionProof(proof.leaf_index, signed.treeSize, leaf, proof.audit_path);
  } catch (err) {
    return fail("verify.step.path", `${t("verify.path_bad")} (${err.message})`);
  }
  if (v.bytesToHex(root) !== v.bytesToHex(signed.root)) {
    return fail("verify.step.path", `${t("verify.path_bad")} ${v.bytesToHex(root)}`);
  }
  pass("verify.step.path", t("verify.path_ok", { n: proof.audit_path.length, root: v.bytesToHex(root) }));
  return true;
}

export async function render(main, [txParam]) {
  main.appendChild(h("h1", { text: t("verify.title") }));
  main.appendChild(h("p", { class: "muted", text: t("verify.help") }));
  const rerender = async () => render(clear(main), [txParam]);
  main.appendChild(await pinPanel(rerender));
  const txInput = h("input", { id: "verify-tx", size: 40, value: txParam || "", placeholder: t("verify.tx_placeholder") });
  if (!txParam) {
    try {
      const page = await api("/v1/ledger/transactions", { query: { limit: 1 } });
      if (page.items.length) txInput.value = page.items[0].id;
    } catch { /* an auditor without transactions types one */ }
  }
  const steps = h("ol", { class: "steps", id: "verify-steps" });
  const verdict = h("div", { id: "verdict" });
  const button = h("button", { type: "button", class: "primary", id: "verify-button", text: t("verify.button") });
  button.addEventListener("click", async () => {
    clear(steps);
    clear(verdict);
    button.disabled = true;
    let ok = false;
    try {
      ok = await run(txInput.value.trim(), (step) => {
        steps.appendChild(h("li", { class: step.pass ? "pass" : "fail", "data-step": step.key, "data-pass": step.pass ? "1" : "0" },
          h("div", {}, `${step.pass ? "✓" : "✗"} ${t(step.key)}`), h("div", { class: "detail", text: step.detail })));
      });
    } catch (err) {
      steps.appendChild(h("li", { class: "fail", "data-pass": "0" }, `✗ ${err.code || ""} ${err.message}`));
      ok = false;
    }
    verdict.appendChild(h("div", { class: `verdict ${ok ? "pass" : "fail"}`, "data-verdict": ok ? "pass" : "fail", text: ok ? t("verify.pass") : t("verify.fail") }));
    button.disabled = false;
  });
  main.appendChild(h("div", { class: "card" }, h("div", { class: "row" }, h("label", {}, t("verify.tx"), txInput), button), verdict, steps));
}
