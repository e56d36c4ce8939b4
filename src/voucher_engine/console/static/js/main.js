// The console's shell: sign-in, the navigation each role gets, the hash router, the language switch.
import { api, ApiError, setToken, token, whenSignedOut } from "./api.js";
import { clear, h, notice } from "./dom.js";
import { lang, setLang, t } from "./i18n.js";
import * as campaigns from "./views/campaigns.js";
import * as editor from "./views/editor.js";
import * as ledger from "./views/ledger.js";
import * as verify from "./views/verify.js";
import * as operator from "./views/operator.js";
import * as settlement from "./views/settlement.js";
import * as webhooks from "./views/webhooks.js";
import * as risk from "./views/risk.js";

// What each role sees: exactly the views whose API calls its token may make.
const ROUTES = {
  gov: [
    ["campaigns", "nav.campaigns", campaigns.list],
    ["campaign", null, campaigns.detail],
    ["editor", "nav.editor", editor.render],
    ["risk", "nav.risk", risk.render],
  ],
  auditor: [
    ["campaigns", "nav.campaigns", campaigns.list],
    ["campaign", null, campaigns.detail],
    ["ledger", "nav.ledger", ledger.render],
    ["verify", "nav.verify", verify.render],
    ["risk", "nav.risk", risk.render],
  ],
  admin: [
    ["issuers", "nav.issuers", operator.issuers],
    ["merchants", "nav.merchants", operator.merchants],
    ["payouts", "nav.payouts", settlement.payouts],
    ["tokens", "nav.tokens", operator.tokens],
    ["webhooks", "nav.webhooks", webhooks.render],
    ["risk", "nav.risk", risk.render],
  ],
};

let me = null;
const main = () => document.getElementById("main");

function routeOf() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  return { name, params: rest.map(decodeURIComponent) };
}

function chrome() {
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  document.getElementById("brand-name").textContent = t("brand");
  document.getElementById("lang").textContent = lang() === "zh" ? "English" : "简体中文";
  const signout = document.getElementById("signout");
  signout.textContent = t("signout");
  signout.hidden = !me;
  const who = document.getElementById("who");
  who.textContent = me ? `${t(`role.${me.role}`)}${me.issuer_region ? ` · ${me.issuer_region}` : ""}` : "";
  who.setAttribute("data-role", me ? me.role : "");
  const nav = clear(document.getElementById("nav"));
  const current = routeOf().name;
  if (me) {
    for (const [name, label] of ROUTES[me.role] || []) {
      if (label) nav.appendChild(h("a", { href: `#/${name}`, text: t(label), class: current === name ? "active" : null, "data-nav": name }));
    }
  }
  document.getElementById("foot").textContent = t("footer");
}

function signIn(message) {
  me = null;
  chrome();
  const input = h("input", { type: "password", id: "token", autocomplete: "off", spellcheck: "false", placeholder: "ve_…" });
  const form = h("form", { class: "card signin", id: "signin" },
    h("h1", { text: t("signin.title") }),
    h("p", { class: "muted", text: t("signin.help") }),
    message ? notice("error", message) : null,
    h("label", {}, t("signin.token"), input),
    h("div", { class: "row" }, h("button", { class: "primary", type: "submit", text: t("signin.submit") })),
    h("p", { class: "muted", text: t("signin.storage") }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    await start();
  });
  clear(main()).appendChild(form);
  input.focus();
}

async function route() {
  if (!me) return;
  const routes = ROUTES[me.role] || [];
  let { name, params } = routeOf();
  const found = routes.find(([n]) => n === name);
  if (!found) {
    location.hash = `#/${routes[0][0]}`;
    return;
  }
  chrome();
  // Each render gets an element of its own: a view still waiting for the API when the user moves on finishes into
  // a detached element instead of appending to the next view.
  const target = h("div", { class: "view", "data-view": name });
  clear(main()).appendChild(target);
  try {
    await found[2](target, params, { me });
  } catch (err) {
    target.appendChild(notice("error", err instanceof ApiError ? `${err.code}: ${err.message}` : String(err)));
    if (!(err instanceof ApiError)) console.warn(err);
  }
}

async function start() {
  if (!token()) return signIn();
  try {
    me = await api("/v1/whoami");
  } catch (err) {
    setToken(null);
    return signIn(err instanceof ApiError && err.status === 401 ? t("signin.bad") : String(err.message || err));
  }
  if (!ROUTES[me.role]) {
    setToken(null);
    return signIn(t("signin.norole"));
  }
  await route();
}

whenSignedOut(() => {
  setToken(null);
  signIn(t("signin.expired"));
});

document.getElementById("lang").addEventListener("click", async () => {
  setLang(lang() === "zh" ? "en" : "zh");
  if (me) await route();
  else signIn();
});
document.getElementById("signout").addEventListener("click", () => {
  setToken(null);
  location.hash = "";
  signIn();
});
window.addEventListener("hashchange", route);
start();
