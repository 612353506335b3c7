// The touchpoint wizard, in the portal's steps: basic info, source, destination, mapping
// (with a live preview), filter and ordering, review and publish. A new touchpoint is saved
// as a draft when the destination step is done, so the mapping preview runs on the server
// against the real draft; every later step saves the draft. Publishing makes it run.

import { h, replace, field, notice, describe, pretty } from "./dom.js";

const STEPS = ["Basic info", "Source", "Destination", "Mapping", "Filter and ordering", "Review and publish"];

const TOUCHPOINT = `query Touchpoint($id: ID!) {
  touchpoint(id: $id) {
    id connectionId name managedBy generation publishedGeneration hasUnpublishedChanges autoSync endpointUrl
    spec {
      name helpUrl showInAgent filter
      source { app endpoint schema format verification {
        scheme hasSecret hasPreviousSecret additionalSecretCount header queryParameter algorithm
        encoding prefix signedContent timestampHeader idHeader toleranceSeconds username orgId actionIds } }
      destination { method url format headers { name value secret hasValue } }
      mapping { rules { target expr } program }
      delivery { maxAttempts initialBackoffMs maxBackoffMs timeoutSeconds }
      ordering { key onFailure }
    }
  }
}`;

const SAVED = "id generation endpointUrl hasUnpublishedChanges";

/** The form's state: what the user typed, shaped like the GraphQL inputs. */
function blank(connectionId) {
  return {
    connectionId: connectionId || "",
    name: "", helpUrl: "", showInAgent: true,
    source: { app: "generic", endpoint: "", format: "JSON", verification: { scheme: "" } },
    destination: { method: "POST", url: "", format: "JSON", headers: [] },
    mapping: { rules: [{ target: "", expr: "" }], program: "" },
    filter: "", ordering: { key: "", onFailure: "BLOCK" }, maxAttempts: "",
  };
}

function fromTouchpoint(tp) {
  const spec = tp.spec;
  const v = spec.source.verification || {};
  return {
    connectionId: tp.connectionId,
    name: spec.name, helpUrl: spec.helpUrl || "", showInAgent: spec.showInAgent,
    source: {
      app: spec.source.app, endpoint: spec.source.endpoint, format: spec.source.format,
      verification: { ...v, actionIds: (v.actionIds || []).join("\n") },
    },
    destination: {
      method: spec.destination.method, url: spec.destination.url, format: spec.destination.format,
      headers: spec.destination.headers.map((hd) => ({
        name: hd.name, value: hd.secret ? "" : hd.value, secret: hd.secret, stored: hd.secret && hd.hasValue,
      })),
    },
    mapping: {
      rules: spec.mapping.rules.length ? spec.mapping.rules.map((r) => ({ ...r })) : [{ target: "", expr: "" }],
      program: spec.mapping.program || "",
    },
    filter: spec.filter || "",
    ordering: spec.ordering ? { ...spec.ordering } : { key: "", onFailure: "BLOCK" },
    maxAttempts: String(spec.delivery.maxAttempts),
  };
}

export async function wizardPage(session, main, touchpointId) {
  const catalog = await session.api.request(`query Catalog {
    apps { id displayName verification schemes dedupe
      fields { name label kind required schemes options default help } }
    connections { id organizationId name sourceApp destinationApp }
  }`);
  const org = session.organization;
  const connections = catalog.connections.filter((c) => !org || c.organizationId === org.id || c.organizationId === null);
  let touchpoint = null;
  let state;
  if (touchpointId) {
    touchpoint = (await session.api.request(TOUCHPOINT, { id: touchpointId })).touchpoint;
    if (!touchpoint) throw new Error("No such touchpoint.");
    state = fromTouchpoint(touchpoint);
  } else {
    state = blank(connections[0] && connections[0].id);
    const connection = connections[0];
    if (connection) state.source.app = connection.sourceApp;
  }
  document.title = `${touchpoint ? "Edit" : "New"} touchpoint · Hookplane`;
  let step = 0;
  const body = h("div", { class: "wizard-body" });
  const message = h("div", { "aria-live": "polite", class: "wizard-message" });
  const nav = h("ol", { class: "steps", "aria-label": "Wizard steps" });
  const back = h("button", { type: "button", onclick: () => show(step - 1) }, "Back");
  const next = h("button", { type: "submit", class: "primary" }, "Next");
  const form = h("form", {
    class: "card wizard", novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      await advance();
    },
  }, nav, body, message, h("div", { class: "wizard-actions" }, back, next));

  if (touchpoint && touchpoint.managedBy === "EXTERNAL") {
    replace(main, h("h1", {}, touchpoint.name), notice("error", "This touchpoint is managed outside the portal: edit its Kubernetes resource."));
    return () => {};
  }
  if (!session.can("ADMIN")) {
    replace(main, h("h1", {}, "Touchpoint wizard"), notice("error", "Only admins create and edit touchpoints."));
    return () => {};
  }
  replace(main, h("h1", {}, touchpoint ? `Edit ${touchpoint.name}` : "New touchpoint"), form);

  function renderNav() {
    replace(nav, STEPS.map((name, index) => h("li", {
      class: index === step ? "current" : index < step ? "done" : "",
      "aria-current": index === step ? "step" : null,
    }, h("span", { class: "step-number" }, String(index + 1)), " ", name)));
  }

  function show(index) {
    step = Math.max(0, Math.min(STEPS.length - 1, index));
    renderNav();
    replace(message);
    back.disabled = step === 0;
    next.textContent = step === STEPS.length - 1 ? "Publish" : step === 2 && !touchpoint ? "Save draft and continue" : "Next";
    const builders = [basicStep, sourceStep, destinationStep, mappingStep, filterStep, reviewStep];
    replace(body, h("h2", { id: "step-title" }, `${step + 1}. ${STEPS[step]}`), builders[step]());
    const first = body.querySelector("input, select, textarea");
    if (first) first.focus();
  }

  async function advance() {
    replace(message);
    try {
      if (step >= 2) await save();
      if (step === STEPS.length - 1) {
        await publish();
        return;
      }
      show(step + 1);
    } catch (error) {
      showError(error);
    }
  }

  function showError(error) {
    for (const marked of body.querySelectorAll("[aria-invalid]")) marked.removeAttribute("aria-invalid");
    for (const old of body.querySelectorAll(".field-error")) old.remove();
    const details = error.details || [];
    const unplaced = [];
    for (const detail of details) {
      const control = body.querySelector(`[data-field="${CSS.escape(detail.field)}"]`)
        || body.querySelector(`[data-field="${CSS.escape(detail.field.replace(/\.(expr|target)$/, ".expr"))}"]`);
      if (control) {
        control.setAttribute("aria-invalid", "true");
        control.after(h("p", { class: "field-error", role: "alert" }, `${detail.message} (${detail.code})`));
      } else {
        unplaced.push(`${detail.field}: ${detail.message}`);
      }
    }
    replace(message, notice("error", describe(error)), unplaced.length ? h("ul", { class: "errors" }, unplaced.map((u) => h("li", {}, u))) : null);
  }

  function input() {
    const v = state.source.verification;
    const verification = {};
    for (const [key, value] of Object.entries(v)) {
      if (["hasSecret", "hasPreviousSecret", "additionalSecretCount", "__typename"].includes(key)) continue;
      if (value === "" || value === null || value === undefined) continue;
      if (key === "actionIds") verification.actionIds = String(value).split(/\s+/).filter(Boolean);
      else if (key === "additionalSecrets") verification.additionalSecrets = String(value).split(/\s+/).filter(Boolean);
      else if (key === "toleranceSeconds") verification.toleranceSeconds = Number(value);
      else verification[key] = value;
    }
    return {
      name: state.name,
      helpUrl: state.helpUrl || null,
      showInAgent: state.showInAgent,
      source: {
        app: state.source.app, endpoint: state.source.endpoint, format: state.source.format,
        // Always an object, never null: a null verification would replace the stored one and
        // drop its write-only secrets; fields left out of an object keep what is stored.
        verification,
      },
      destination: {
        method: state.destination.method, url: state.destination.url, format: state.destination.format,
        headers: state.destination.headers.filter((hd) => hd.name).map((hd) => ({
          name: hd.name, value: hd.value === "" && hd.stored ? null : hd.value, secret: hd.secret,
        })),
      },
      mapping: {
        rules: state.mapping.rules.filter((r) => r.target || r.expr),
        program: state.mapping.program || null,
      },
      filter: state.filter,
      ordering: state.ordering.key ? { key: state.ordering.key, onFailure: state.ordering.onFailure } : null,
      delivery: state.maxAttempts ? { maxAttempts: Number(state.maxAttempts) } : null,
    };
  }

  let lastSaved = null;
  async function save() {
    const spec = input();
    // Unchanged since the last save (moving between steps, previewing again): nothing to
    // write, so the draft's generation and the audit log only count real edits.
    const snapshot = JSON.stringify(spec);
    if (touchpoint && snapshot === lastSaved) return;
    if (!touchpoint) {
      const created = await session.api.request(
        `mutation Create($input: CreateTouchpointInput!) { createTouchpoint(input: $input) { ${SAVED} } }`,
        { input: { connectionId: state.connectionId, ...spec, filter: spec.filter || null } });
      touchpoint = created.createTouchpoint;
      history.replaceState(null, "", `#/touchpoints/${touchpoint.id}/edit`);
    } else {
      const updated = await session.api.request(
        `mutation Update($input: UpdateTouchpointInput!) { updateTouchpoint(input: $input) { ${SAVED} } }`,
        { input: { id: touchpoint.id, ...spec, ordering: spec.ordering || { key: "", onFailure: "BLOCK" } } });
      touchpoint = { ...touchpoint, ...updated.updateTouchpoint };
    }
    lastSaved = snapshot;
  }

  async function publish() {
    const published = await session.api.request(
      "mutation Publish($id: ID!) { publishTouchpoint(id: $id) { id publishedGeneration endpointUrl } }",
      { id: touchpoint.id });
    if (state.autoSync) {
      await session.api.request(
        "mutation AutoSync($id: ID!) { setAutoSync(id: $id, enabled: true) { id } }", { id: touchpoint.id });
    }
    replace(message, notice("ok", `Published generation ${published.publishTouchpoint.publishedGeneration}.`));
    session.go(`/touchpoints/${touchpoint.id}`);
  }

  // Controls bound to the state: `bind(object, key, element)` keeps object[key] current.
  function bind(object, key, element, fieldName) {
    if (element.type === "checkbox") element.checked = Boolean(object[key]);
    else element.value = object[key] ?? "";
    if (fieldName) element.dataset.field = fieldName;
    element.addEventListener("input", () => {
      object[key] = element.type === "checkbox" ? element.checked : element.value;
    });
    element.addEventListener("change", () => {
      object[key] = element.type === "checkbox" ? element.checked : element.value;
    });
    return element;
  }

  function options(values, labels = values) {
    return values.map((value, i) => h("option", { value }, labels[i]));
  }

  function basicStep() {
    const connection = bind(state, "connectionId", h("select", { name: "connection", disabled: Boolean(touchpoint) },
      options(connections.map((c) => c.id), connections.map((c) => `${c.name} (${c.sourceApp} → ${c.destinationApp})`))));
    connection.addEventListener("change", () => {
      const chosen = connections.find((c) => c.id === connection.value);
      if (chosen) state.source.app = chosen.sourceApp;
    });
    return [
      field("Connection", connection),
      field("Name", bind(state, "name", h("input", { name: "name", required: true, maxlength: 200 }), "name")),
      field("Help URL", bind(state, "helpUrl", h("input", { name: "helpUrl", type: "url" }), "helpUrl"), "Where integration engineers read about this touchpoint."),
      h("label", { class: "check" }, bind(state, "showInAgent", h("input", { type: "checkbox", name: "showInAgent" })), " Show in agent"),
    ];
  }

  function sourceStep() {
    const verificationArea = h("fieldset", { class: "verification" });
    const app = bind(state.source, "app", h("select", { name: "app" },
      options(catalog.apps.map((a) => a.id), catalog.apps.map((a) => a.displayName))), "source.app");
    const renderVerification = () => {
      const chosen = catalog.apps.find((a) => a.id === state.source.app);
      replace(verificationArea, verificationFields(chosen, renderVerification));
    };
    app.addEventListener("change", () => {
      state.source.verification = { scheme: "" };
      renderVerification();
    });
    renderVerification();
    return [
      field("Source app", app),
      field("Endpoint", bind(state.source, "endpoint", h("input", { name: "endpoint", required: true, placeholder: "orders/created" }), "source.endpoint"),
        "The last part of the URL the source app sends to."),
      field("Payload format", bind(state.source, "format", h("select", { name: "sourceFormat" }, options(["JSON", "XML", "FORM"])), "source.format")),
      verificationArea,
    ];
  }

  /** The verification fields of `app`; `redraw` draws them again when the scheme changes. */
  function verificationFields(app, redraw) {
    if (!app) return [];
    const v = state.source.verification;
    const parts = [h("legend", {}, `Verification: ${app.verification}`)];
    if (app.schemes.length) {
      if (!v.scheme) v.scheme = app.schemes[0];
      const scheme = bind(v, "scheme", h("select", { name: "scheme" }, options(app.schemes)), "source.verification.scheme");
      scheme.addEventListener("change", redraw);
      parts.push(field("Scheme", scheme));
    }
    for (const f of app.fields) {
      if (f.schemes.length && !f.schemes.includes(v.scheme)) continue;
      if (v[f.name] === undefined && f.default !== null) v[f.name] = f.default;
      parts.push(verificationControl(f, v));
    }
    parts.push(h("p", { class: "help" }, `Duplicates are recognized by ${app.dedupe}.`));
    return parts;
  }

  function verificationControl(f, v) {
    const name = `source.verification.${f.name}`;
    const label = f.required ? `${f.label} (required)` : f.label;
    let control;
    if (f.kind === "SECRET") {
      const stored = f.name === "secret" ? v.hasSecret : f.name === "previousSecret" ? v.hasPreviousSecret : false;
      control = h("input", { type: "password", autocomplete: "new-password", name: f.name,
        placeholder: stored ? "stored: leave empty to keep it" : "" });
      v[f.name] = "";
    } else if (f.kind === "SECRET_LIST") {
      control = h("textarea", { name: f.name, rows: 2, placeholder: v.additionalSecretCount ? `${v.additionalSecretCount} stored: leave empty to keep them` : "one per line" });
      v[f.name] = "";
    } else if (f.kind === "TEXT_LIST") {
      control = h("textarea", { name: f.name, rows: 2, placeholder: "one per line" });
    } else if (f.kind === "CHOICE") {
      control = h("select", { name: f.name }, options(["", ...f.options], ["(default)", ...f.options]));
    } else if (f.kind === "SECONDS") {
      control = h("input", { type: "number", min: 0, name: f.name });
    } else {
      control = h("input", { name: f.name });
    }
    bind(v, f.name, control, name);
    return field(label, control, f.help);
  }

  function destinationStep() {
    const headers = h("div", { class: "headers" });
    const renderHeaders = () => replace(headers,
      state.destination.headers.map((hd, index) => h("div", { class: "header-row" },
        field("Header name", bind(hd, "name", h("input", { name: `header-${index}-name` }), `destination.headers[${index}]`)),
        field("Value", bind(hd, "value", h("input", {
          name: `header-${index}-value`, type: hd.secret ? "password" : "text", autocomplete: "off",
          placeholder: hd.stored ? "stored: leave empty to keep it" : "",
        }))),
        h("label", { class: "check" }, bind(hd, "secret", h("input", { type: "checkbox", name: `header-${index}-secret` })), " Secret"),
        h("button", { type: "button", class: "small", "aria-label": `Remove header ${index + 1}`,
          onclick: () => { state.destination.headers.splice(index, 1); renderHeaders(); } }, "Remove"))),
      h("button", { type: "button", class: "small", onclick: () => { state.destination.headers.push({ name: "", value: "", secret: false }); renderHeaders(); } }, "Add header"));
    renderHeaders();
    return [
      h("div", { class: "grid" },
        field("Method", bind(state.destination, "method", h("select", { name: "method" }, options(["POST", "PUT", "PATCH"])), "destination.method")),
        field("Format", bind(state.destination, "format", h("select", { name: "destinationFormat" }, options(["JSON", "XML", "FORM"])), "destination.format"))),
      field("URL", bind(state.destination, "url", h("input", { name: "url", required: true, placeholder: "https://api.example.com/orders" }), "destination.url"),
        "Absolute, or relative to the connection's destination base URL."),
      h("fieldset", {}, h("legend", {}, "Headers"), headers),
    ];
  }

  function mappingStep() {
    const rules = h("div", { class: "rules" });
    const renderRules = () => replace(rules,
      state.mapping.rules.map((rule, index) => h("div", { class: "rule-row", "data-rule": index },
        field(`Rule ${index + 1} target`, bind(rule, "target", h("input", { name: `rule-${index}-target`, placeholder: "CardCode" }), `mapping.rules[${index}].target`)),
        field(`Rule ${index + 1} jq`, bind(rule, "expr", h("input", { name: `rule-${index}-expr`, class: "code", placeholder: ".customer.id" }), `mapping.rules[${index}].expr`)),
        h("button", { type: "button", class: "small", "aria-label": `Remove rule ${index + 1}`,
          onclick: () => { state.mapping.rules.splice(index, 1); renderRules(); } }, "Remove"))),
      h("button", { type: "button", class: "small", id: "add-rule", onclick: () => { state.mapping.rules.push({ target: "", expr: "" }); renderRules(); } }, "Add rule"));
    renderRules();
    const payload = h("textarea", { name: "previewPayload", rows: 5, class: "code", placeholder: "{\"id\": 1001, \"customer\": {\"id\": 7}}" });
    const eventId = h("input", { name: "previewEvent", placeholder: "event id from the resync bucket" });
    const output = h("div", { class: "preview-output", id: "preview-output", "aria-live": "polite" });
    const preview = async () => {
      replace(output, h("p", { class: "muted" }, "Previewing…"));
      for (const row of rules.querySelectorAll(".rule-row")) row.classList.remove("rule-error");
      for (const old of body.querySelectorAll(".field-error")) old.remove();
      for (const marked of body.querySelectorAll("[aria-invalid]")) marked.removeAttribute("aria-invalid");
      let variables = { id: touchpoint.id };
      if (eventId.value.trim()) {
        variables.eventId = eventId.value.trim();
      } else {
        try {
          variables.payload = JSON.parse(payload.value || "{}");
        } catch (error) {
          replace(output, notice("error", `The payload is not JSON: ${error.message}`));
          return;
        }
      }
      try {
        await save();
        const data = await session.api.request(`mutation Preview($id: ID!, $eventId: ID, $payload: JSON) {
          previewMapping(touchpointId: $id, eventId: $eventId, payload: $payload) {
            generation skipped output orderingKey error errorCode errorField } }`, variables);
        const result = data.previewMapping;
        if (result.error) {
          const control = result.errorField && body.querySelector(`[data-field="${CSS.escape(result.errorField)}"]`);
          if (control) {
            control.setAttribute("aria-invalid", "true");
            const row = control.closest(".rule-row");
            if (row) row.classList.add("rule-error");
            const shown = h("p", { class: "field-error", role: "alert" }, result.error);
            if (row) row.append(shown);
            else control.after(shown);
          }
          replace(output, notice("error", `${result.error} (${result.errorCode})`));
        } else if (result.skipped) {
          replace(output, notice("info", "The filter would mark this event SKIPPED."));
        } else {
          replace(output, h("h3", {}, `Output (draft generation ${result.generation})`), h("pre", { class: "json", id: "preview-json" }, pretty(result.output)),
            result.orderingKey !== null ? h("p", {}, `Ordering key: ${JSON.stringify(result.orderingKey)}`) : null);
        }
      } catch (error) {
        showError(error);
        replace(output, notice("error", describe(error)));
      }
    };
    let timer = null;
    const live = h("input", { type: "checkbox", name: "livePreview", checked: true });
    form.addEventListener("input", () => {
      if (step !== 3 || !live.checked) return;
      clearTimeout(timer);
      timer = setTimeout(preview, 600);
    });
    return h("div", { class: "mapping-layout" }, h("div", {},
      h("fieldset", {}, h("legend", {}, "Rules (target ← jq on the payload)"), rules),
      field("Program (jq, instead of or after the rules)", bind(state.mapping, "program", h("textarea", { name: "program", rows: 4, class: "code" }), "mapping.program"))),
      h("fieldset", { class: "preview" }, h("legend", {}, "Preview"),
        field("Pasted payload (JSON)", payload),
        field("Or a stored event", eventId),
        h("label", { class: "check" }, live, " Preview as I type"),
        h("button", { type: "button", id: "preview", onclick: preview }, "Preview"),
        output));
  }

  function filterStep() {
    return [
      field("Filter (jq; false or null marks the event SKIPPED)", bind(state, "filter", h("input", { name: "filter", class: "code", placeholder: ".status == \"paid\"" }), "filter")),
      h("div", { class: "grid" },
        field("Ordering key (jq)", bind(state.ordering, "key", h("input", { name: "orderingKey", class: "code", placeholder: ".order.id" }), "ordering.key"),
          "Events with the same key are delivered one at a time, in arrival order. Empty: no ordering."),
        field("When an ordered event fails", bind(state.ordering, "onFailure", h("select", { name: "onFailure" }, options(["BLOCK", "PARK"], ["Block the key until it is resynced", "Park it and move on"]))))),
      field("Attempts before FAILED", bind(state, "maxAttempts", h("input", { type: "number", min: 1, max: 100, name: "maxAttempts", placeholder: "default" }), "delivery.maxAttempts")),
    ];
  }

  function reviewStep() {
    const spec = input();
    const shown = JSON.parse(JSON.stringify(spec));
    if (shown.source.verification) {
      for (const key of ["secret", "previousSecret", "additionalSecrets"]) {
        if (shown.source.verification[key]) shown.source.verification[key] = "(new value, write-only)";
      }
    }
    for (const hd of shown.destination.headers) if (hd.secret && hd.value) hd.value = "(new value, write-only)";
    if (state.autoSync === undefined) state.autoSync = touchpoint ? touchpoint.autoSync : false;
    return [
      h("p", {}, touchpoint && touchpoint.endpointUrl
        ? ["Give the source app this URL: ", h("code", { id: "endpoint-url" }, touchpoint.endpointUrl)]
        : "The endpoint URL appears once a URL is registered for the organization."),
      h("pre", { class: "json review" }, pretty(shown)),
      h("label", { class: "check" }, bind(state, "autoSync", h("input", { type: "checkbox", name: "autoSync" })), " Turn Auto-sync on after publishing"),
    ];
  }

  show(0);
  return () => {};
}
