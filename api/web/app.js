// The portal: sign-in, then touchpoints, the wizard, the resync bucket and the log bucket.
// Routes live in the URL's fragment (#/touchpoints/…) so the server serves one page.

import { Api } from "./graphql.js";
import { h, replace, describe, notice } from "./dom.js";
import { signInPage, touchpointsPage } from "./pages.js";
import { wizardPage } from "./wizard.js";
import { resyncPage, logPage } from "./buckets.js";

const TOKEN_KEY = "hookplane.token";
const ORG_KEY = "hookplane.organization";
const RANK = { VIEWER: 1, OPERATOR: 2, ADMIN: 3 };

/** What every page gets: the API, the organization, the caller's role, navigation. */
const session = {
  api: null,
  viewer: null,
  organizations: [],
  organization: null,
  /** Whether the caller's role in the current organization is at least `role`. */
  can(role) {
    return Boolean(this.organization) && RANK[this.organization.role] >= RANK[role];
  },
  go(path) {
    if (location.hash === `#${path}`) render();
    else location.hash = path;
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ORG_KEY);
    if (this.api) this.api.close();
    this.api = null;
    this.organization = null;
    this.go("/signin");
  },
  async signIn(token) {
    const api = new Api(token);
    const data = await api.request(
      "query SignIn { viewer organizations { id slug registeredUrl role } }",
    );
    if (this.api && this.api !== api) this.api.close();
    this.api = api;
    this.viewer = data.viewer;
    this.organizations = data.organizations;
    const remembered = sessionStorage.getItem(ORG_KEY);
    this.organization = data.organizations.find((o) => o.id === remembered) || data.organizations[0] || null;
    sessionStorage.setItem(TOKEN_KEY, token);
    api.onStatus = (status) => {
      const light = document.getElementById("live-status");
      if (light) {
        light.textContent = status === "live" ? "Live" : status === "refused" ? "Signed out" : "Reconnecting…";
        light.className = `live ${status}`;
      }
      if (status === "refused") this.signOut();
    };
  },
  choose(organizationId) {
    this.organization = this.organizations.find((o) => o.id === organizationId) || this.organization;
    if (this.organization) sessionStorage.setItem(ORG_KEY, this.organization.id);
    render();
  },
};

let dispose = () => {};

function header() {
  const org = session.organization;
  return h("header", { class: "top" },
    h("a", { class: "brand", href: "#/touchpoints" }, "Hookplane"),
    h("nav", { "aria-label": "Main" },
      h("a", { href: "#/touchpoints" }, "Touchpoints"),
      h("a", { href: "/graphql" }, "GraphiQL")),
    h("div", { class: "who" },
      session.organizations.length > 1
        ? h("label", { class: "org-pick" }, "Organization ",
          h("select", {
            id: "organization",
            onchange: (e) => session.choose(e.target.value),
          }, session.organizations.map((o) =>
            h("option", { value: o.id, selected: org && o.id === org.id }, o.slug))))
        : h("span", { id: "organization" }, org ? org.slug : "no organization"),
      org ? h("span", { class: `role role-${org.role.toLowerCase()}`, id: "role" }, org.role.toLowerCase()) : null,
      h("span", { id: "live-status", class: "live", "aria-live": "polite" }, ""),
      h("span", { class: "viewer", title: "Who the audit log records" }, session.viewer),
      h("button", { type: "button", class: "link", onclick: () => session.signOut() }, "Sign out")));
}

async function render() {
  dispose();
  dispose = () => {};
  const root = document.getElementById("app");
  const path = (location.hash || "#/touchpoints").slice(1);
  if (!session.api) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) {
      try {
        await session.signIn(token);
      } catch {
        sessionStorage.removeItem(TOKEN_KEY);
      }
    }
  }
  if (!session.api || path === "/signin") {
    if (session.api && path === "/signin") return session.go("/touchpoints");
    document.title = "Sign in · Hookplane";
    replace(root, signInPage(session));
    root.querySelector("input[name=token]").focus();
    return;
  }
  const main = h("main", { id: "main", tabindex: "-1" });
  replace(root, h("a", { class: "skip", href: "#main", onclick: (e) => { e.preventDefault(); main.focus(); } }, "Skip to content"), header(), main);
  const parts = path.split("/").filter(Boolean);
  try {
    if (parts[0] === "touchpoints" && parts[1] === "new") {
      dispose = await wizardPage(session, main, null);
    } else if (parts[0] === "touchpoints" && parts[1] && parts[2] === "edit") {
      dispose = await wizardPage(session, main, parts[1]);
    } else if (parts[0] === "touchpoints" && parts[1] && parts[2] === "logs") {
      dispose = await logPage(session, main, parts[1]);
    } else if (parts[0] === "touchpoints" && parts[1]) {
      dispose = await resyncPage(session, main, parts[1], parts[2] === "events" ? parts[3] : null);
    } else {
      dispose = await touchpointsPage(session, main);
    }
  } catch (error) {
    replace(main, notice("error", describe(error)));
  }
  focusMain(main);
}

function focusMain(element) {
  const heading = element.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

window.addEventListener("hashchange", render);
render();
