// Sign-in and the list of connections with their touchpoints.

import { h, replace, field, notice, describe, badge } from "./dom.js";

export function signInPage(session) {
  const input = h("input", {
    type: "password", name: "token", autocomplete: "off", required: true,
    spellcheck: "false", placeholder: "hp_…",
  });
  const message = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", {
    class: "card signin",
    onsubmit: async (event) => {
      event.preventDefault();
      submit.disabled = true;
      replace(message);
      try {
        await session.signIn(input.value.trim());
        session.go("/touchpoints");
      } catch (error) {
        replace(message, notice("error", error.code === "UNAUTHENTICATED"
          ? "That token is not valid (it may have expired or been revoked)."
          : describe(error)));
        submit.disabled = false;
        input.focus();
      }
    },
  },
  h("h1", {}, "Sign in to Hookplane"),
  field("API token", input,
    "An API token from `hookplane token create`, or the owner token the first start printed. It is kept in this tab only (session storage)."),
  message,
  submit);
  return h("main", { id: "main", class: "center" }, form);
}

const TOUCHPOINTS = `query Touchpoints {
  connections {
    id organizationId name sourceApp destinationApp destinationBaseUrl paused managedBy
    resource { namespace name }
    touchpoints {
      id name endpoint endpointUrl autoSync managedBy generation publishedGeneration
      hasUnpublishedChanges resource { namespace name }
      bucketCounts { unprocessed success failed skipped }
    }
  }
}`;

export async function touchpointsPage(session, main) {
  document.title = "Touchpoints · Hookplane";
  const data = await session.api.request(TOUCHPOINTS);
  const org = session.organization;
  const connections = data.connections.filter((c) => !org || c.organizationId === org.id || c.organizationId === null);
  const status = h("div", { "aria-live": "polite" });
  const sections = connections.map((connection) => connectionSection(session, connection, status));
  if (!org && session.organizations.length === 0) {
    replace(main, h("div", { class: "page-head" }, h("h1", {}, "Touchpoints")),
      connections.length ? connections.map((c) => connectionSection(session, c, status)) : null,
      registerForm(session));
    return () => {};
  }
  replace(main,
    h("div", { class: "page-head" },
      h("h1", {}, "Touchpoints"),
      session.can("ADMIN") && connections.length
        ? h("a", { class: "button primary", href: "#/touchpoints/new", id: "new-touchpoint" }, "New touchpoint")
        : null),
    status,
    connections.length === 0
      ? notice("info", session.can("ADMIN")
        ? "No connections yet: create one below, then a touchpoint in it."
        : "No connections yet. An admin creates them.")
      : sections,
    session.can("ADMIN") ? newConnectionForm(session) : null);
  return () => {};
}

function managed(item) {
  if (item.managedBy !== "EXTERNAL") return null;
  const name = item.resource ? `${item.resource.namespace}/${item.resource.name}` : "its resource";
  return h("span", { class: "managed", title: "Edit the Kubernetes resource, not the portal" },
    `managed outside the portal (${name}), read-only`);
}

function connectionSection(session, connection, status) {
  const rows = connection.touchpoints.map((tp) => touchpointRow(session, tp, status));
  return h("section", { class: "card connection", "aria-labelledby": `c-${connection.id}` },
    h("div", { class: "section-head" },
      h("h2", { id: `c-${connection.id}` }, connection.name),
      h("span", { class: "apps" }, `${connection.sourceApp} → ${connection.destinationApp}`),
      connection.paused ? h("span", { class: "badge status-failed" }, "paused") : null,
      managed(connection)),
    rows.length === 0
      ? h("p", { class: "muted" }, "No touchpoints in this connection yet.")
      : h("div", { class: "table-wrap" }, h("table", { class: "touchpoints" },
        h("caption", { class: "visually-hidden" }, `Touchpoints of ${connection.name}`),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Touchpoint"),
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Auto-sync"),
          h("th", { scope: "col" }, "Generation"),
          h("th", { scope: "col" }, "Endpoint URL"),
          h("th", { scope: "col" }, "Bucket"))),
        h("tbody", {}, rows))));
}

function touchpointRow(session, tp, status) {
  const external = tp.managedBy === "EXTERNAL";
  const published = tp.publishedGeneration !== null;
  const state = !published ? "draft" : tp.hasUnpublishedChanges ? "unpublished changes" : "published";
  const toggle = h("input", {
    type: "checkbox", role: "switch", class: "switch", checked: tp.autoSync,
    "aria-label": `Auto-sync for ${tp.name}`,
    disabled: !session.can("OPERATOR") || external,
    title: external ? "Managed outside the portal" : session.can("OPERATOR") ? "" : "Operators and admins switch Auto-sync",
    onchange: async (event) => {
      const enabled = event.target.checked;
      event.target.disabled = true;
      try {
        await session.api.request(
          "mutation AutoSync($id: ID!, $enabled: Boolean!) { setAutoSync(id: $id, enabled: $enabled) { id autoSync } }",
          { id: tp.id, enabled });
        replace(status, notice("ok", `Auto-sync ${enabled ? "on" : "off"} for ${tp.name}.`));
      } catch (error) {
        event.target.checked = !enabled;
        replace(status, notice("error", describe(error)));
      } finally {
        event.target.disabled = false;
      }
    },
  });
  const url = tp.endpointUrl;
  const counts = tp.bucketCounts;
  return h("tr", { "data-touchpoint": tp.id },
    h("th", { scope: "row" },
      h("a", { href: `#/touchpoints/${tp.id}` }, tp.name),
      h("div", { class: "row-links" },
        h("a", { href: `#/touchpoints/${tp.id}/logs` }, "Log bucket"),
        session.can("ADMIN") && !external ? h("a", { href: `#/touchpoints/${tp.id}/edit` }, "Edit") : null),
      managed(tp)),
    h("td", {}, h("span", { class: `state state-${state.replaceAll(" ", "-")}` }, state)),
    h("td", {}, toggle),
    h("td", { class: "numeric" },
      published ? `${tp.publishedGeneration} published` : "—",
      h("div", { class: "muted" }, `draft ${tp.generation}`)),
    h("td", { class: "endpoint" }, url
      ? [h("code", {}, url), copyButton(url, status)]
      : h("span", { class: "muted" }, `…/${tp.endpoint} (register a URL first)`)),
    h("td", { class: "counts" },
      badge("UNPROCESSED"), ` ${counts.unprocessed} `,
      badge("SUCCESS"), ` ${counts.success} `,
      badge("FAILED"), ` ${counts.failed} `,
      badge("SKIPPED"), ` ${counts.skipped}`));
}

function copyButton(text, status) {
  return h("button", {
    type: "button", class: "small", "aria-label": `Copy ${text}`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        replace(status, notice("ok", "Endpoint URL copied."));
      } catch {
        replace(status, notice("error", "The browser did not allow copying; select the URL instead."));
      }
    },
  }, "Copy");
}

function newConnectionForm(session) {
  const name = h("input", { name: "name", required: true, maxlength: 200 });
  const appsList = h("select", { name: "sourceApp", required: true });
  const destination = h("input", { name: "destinationApp", required: true, value: "generic" });
  const baseUrl = h("input", { name: "destinationBaseUrl", type: "url", placeholder: "https://api.example.com" });
  const message = h("div", { "aria-live": "polite" });
  session.api.request("query Apps { apps { id displayName } }").then((data) => {
    replace(appsList, data.apps.map((app) => h("option", { value: app.id }, app.displayName)));
  }).catch((error) => replace(message, notice("error", describe(error))));
  return h("form", {
    class: "card", id: "new-connection",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        await session.api.request(
          "mutation NewConnection($input: CreateConnectionInput!) { createConnection(input: $input) { id } }",
          { input: {
            organizationId: session.organization && session.organization.id,
            name: name.value, sourceApp: appsList.value, destinationApp: destination.value,
            destinationBaseUrl: baseUrl.value || null,
          } });
        session.go("/touchpoints");
      } catch (error) {
        replace(message, notice("error", describe(error)));
      }
    },
  },
  h("h2", {}, "New connection"),
  h("div", { class: "grid" },
    field("Name", name),
    field("Source app", appsList),
    field("Destination app", destination),
    field("Destination base URL", baseUrl, "Touchpoint URLs may be relative to it.")),
  message,
  h("button", { type: "submit" }, "Create connection"));
}

/** A fresh installation has no organization: the owner registers one (its slug and the
 * public URL sources reach Hookplane at) before anything else. */
function registerForm(session) {
  const slug = h("input", { name: "organization", required: true, pattern: "[a-z0-9\\-]{1,63}", placeholder: "acme" });
  const url = h("input", { name: "registeredUrl", type: "url", required: true, placeholder: "https://hooks.example.com", value: location.origin });
  const message = h("div", { "aria-live": "polite" });
  return h("form", {
    class: "card", id: "register-url",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        await session.api.request(
          "mutation Register($input: RegisterUrlInput!) { registerUrl(input: $input) { id } }",
          { input: { organization: slug.value.trim(), url: url.value.trim() } });
        await session.signIn(session.api.token);
        session.go("/touchpoints");
      } catch (error) {
        replace(message, notice("error", describe(error)));
      }
    },
  },
  h("h2", {}, "Register your organization"),
  h("p", {}, "Endpoint URLs are the registered URL, then /hooks/, the organization and the touchpoint's endpoint. Only the instance owner creates organizations."),
  h("div", { class: "grid" },
    field("Organization (slug)", slug, "Lower-case letters, digits and dashes; it never changes."),
    field("Public URL", url, "Where source apps reach this server.")),
  message,
  h("button", { type: "submit", class: "primary" }, "Register"));
}
