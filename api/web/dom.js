// Building the page: every text goes in through textContent or an attribute, never as HTML,
// so what the server stores (names, payloads, error messages) cannot become markup.

/**
 * `h("button", { class: "primary", onclick: fn, disabled: true }, "Save")`: an element with
 * attributes, listeners (`on…`) and children (nodes, strings, arrays, null/false skipped).
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in element) {
      element.value = value;
    } else if (name === "checked") {
      element.checked = Boolean(value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.append(child);
    else element.append(document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

let uniqueCounter = 0;
/** An id for label/control pairs. */
export function uid(prefix = "f") {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/** A labelled control: `field("Name", h("input", {...}))`. */
export function field(label, control, help) {
  const id = control.id || uid();
  control.id = id;
  const helpId = help ? `${id}-help` : null;
  if (helpId) control.setAttribute("aria-describedby", helpId);
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    control,
    help ? h("p", { class: "help", id: helpId }, help) : null);
}

// One formatter for every timestamp: building one per call (toLocaleString with options)
// costs more than the rest of a bucket row.
const TIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});

/** Formats a timestamp in the browser's time zone. */
export function when(iso) {
  if (!iso) return "";
  return TIME.format(new Date(iso));
}

/** Pretty JSON for a <pre>. */
export function pretty(value) {
  if (value === null || value === undefined) return "";
  return JSON.stringify(value, null, 2);
}

/** A status badge. */
export function badge(status) {
  return h("span", { class: `badge status-${String(status).toLowerCase()}` }, status);
}

/** A message area that announces itself to screen readers. */
export function notice(kind, text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

/** The text of an error for a person: its message and code. */
export function describe(error) {
  if (!error) return "";
  return error.code ? `${error.message} (${error.code})` : String(error.message || error);
}
