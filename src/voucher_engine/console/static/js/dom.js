// Building the page without HTML strings: every text goes in through textContent, every attribute through
// setAttribute, so nothing the server or a user typed can become markup or script.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked" || key === "disabled" || key === "hidden" || key === "selected") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function table(columns, rows, { empty = "—" } = {}) {
  // columns: [{title, cell(row) -> Node|string, num?}]
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null, text: c.title })));
  const body = rows.length
    ? rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(row)))))
    : [h("tr", {}, h("td", { colspan: columns.length, class: "muted", text: empty }))];
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

export function figure(label, value, testId) {
  return h("div", { class: "figure", "data-figure": testId }, h("div", { class: "label", text: label }),
    h("div", { class: "value", text: value }));
}

export function notice(kind, text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status", text });
}

export function link(href, text, attrs = {}) {
  return h("a", { href, text, ...attrs });
}
