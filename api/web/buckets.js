// The resync bucket (filter, page, inspect, resync; rows change live) and the log bucket
// (live tail with level filter, pause and jump to the event).

import { h, replace, field, notice, describe, pretty, when, badge } from "./dom.js";

const ROW = "id receivedAt updatedAt status attempts dedupeKey orderingKey lastError responseStatus duplicates";
const STATUSES = ["UNPROCESSED", "SUCCESS", "FAILED", "SKIPPED"];
const LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"];

function tabs(touchpointId, current) {
  return h("nav", { class: "tabs", "aria-label": "Touchpoint" },
    h("a", { href: `#/touchpoints/${touchpointId}`, "aria-current": current === "resync" ? "page" : null }, "Resync bucket"),
    h("a", { href: `#/touchpoints/${touchpointId}/logs`, "aria-current": current === "logs" ? "page" : null }, "Log bucket"));
}

async function loadTouchpoint(session, id) {
  const data = await session.api.request(
    "query Head($id: ID!) { touchpoint(id: $id) { id name autoSync managedBy endpointUrl bucketCounts { unprocessed success failed skipped } } }",
    { id });
  if (!data.touchpoint) throw new Error("No such touchpoint (or not yours).");
  return data.touchpoint;
}

function countsBar(counts, onPick) {
  return h("div", { class: "counts-bar", role: "group", "aria-label": "Events per status" },
    STATUSES.map((s) => h("button", { type: "button", class: "count", "data-status": s, onclick: () => onPick(s) },
      badge(s), h("strong", { class: "count-number" }, String(counts[s.toLowerCase()])))));
}

/** Local datetime-local value → ISO string (or null). */
function isoFrom(value) {
  return value ? new Date(value).toISOString() : null;
}

export async function resyncPage(session, main, touchpointId, openEventId) {
  const touchpoint = await loadTouchpoint(session, touchpointId);
  document.title = `${touchpoint.name} · Resync bucket · Hookplane`;
  const filters = { status: "", from: "", to: "", search: "", first: "100" };
  const cursors = [null];
  let page = null;
  const rows = new Map();
  const selected = new Set();
  const message = h("div", { "aria-live": "polite", id: "bucket-message" });
  const tbody = h("tbody", {});
  const pager = h("div", { class: "pager" });
  const detail = h("aside", { class: "detail card", id: "event-detail", "aria-label": "Event", hidden: true });
  const countsHolder = h("div", {});
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select every row on this page",
    onchange: () => {
      for (const id of rows.keys()) selectAll.checked ? selected.add(id) : selected.delete(id);
      for (const box of tbody.querySelectorAll("input[type=checkbox]")) box.checked = selectAll.checked;
      updateBulk();
    } });
  const canResync = session.can("OPERATOR");
  const resyncSelected = h("button", { type: "button", id: "resync-selected", disabled: true, hidden: !canResync, onclick: () => resync([...selected]) }, "Resync selected");
  const resyncAll = h("button", { type: "button", id: "resync-matching", hidden: !canResync, onclick: resyncMatching }, "Resync all matching");

  const control = (key, element) => {
    element.value = filters[key];
    element.addEventListener("change", () => { filters[key] = element.value; cursors.length = 1; load(); });
    return element;
  };
  const search = h("input", { type: "search", name: "search", placeholder: "event id or key" });
  const filterForm = h("form", { class: "filters", role: "search",
    onsubmit: (e) => { e.preventDefault(); filters.search = search.value.trim(); cursors.length = 1; load(); } },
    field("Status", control("status", h("select", { name: "status" },
      h("option", { value: "" }, "Any"), STATUSES.map((s) => h("option", { value: s }, s))))),
    field("Received from", control("from", h("input", { type: "datetime-local", name: "from", step: 1 }))),
    field("Received to", control("to", h("input", { type: "datetime-local", name: "to", step: 1 }))),
    field("Search", search),
    field("Rows per page", control("first", h("select", { name: "first" }, ["50", "100", "500", "1000"].map((n) => h("option", { value: n }, n))))),
    h("button", { type: "submit" }, "Search"));

  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, touchpoint.name),
      h("span", { class: touchpoint.autoSync ? "state state-published" : "state state-draft" }, touchpoint.autoSync ? "Auto-sync on" : "Auto-sync off")),
    tabs(touchpointId, "resync"),
    countsHolder,
    filterForm,
    h("div", { class: "bulk" }, resyncSelected, resyncAll, canResync ? null : h("span", { class: "muted" }, "Viewers cannot resync.")),
    message,
    h("div", { class: "bucket-layout" },
      h("div", { class: "table-wrap" }, h("table", { class: "bucket", id: "bucket" },
        h("caption", { class: "visually-hidden" }, "Resync bucket, newest first"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, canResync ? selectAll : ""),
          h("th", { scope: "col" }, "Received"),
          h("th", { scope: "col" }, "Event"),
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Attempts"),
          h("th", { scope: "col" }, "Key"),
          h("th", { scope: "col" }, "Last error"))),
        tbody)),
      detail),
    pager);

  function renderCounts(counts) {
    replace(countsHolder, countsBar(counts, (status) => { filters.status = status; filterForm.querySelector("[name=status]").value = status; cursors.length = 1; load(); }));
  }
  renderCounts(touchpoint.bucketCounts);

  let countsTimer = null;
  function refreshCounts() {
    if (countsTimer) return;
    countsTimer = setTimeout(async () => {
      countsTimer = null;
      try {
        renderCounts((await loadTouchpoint(session, touchpointId)).bucketCounts);
      } catch { /* the next change tries again */ }
    }, 400);
  }

  function updateBulk() {
    resyncSelected.disabled = selected.size === 0;
    resyncSelected.textContent = selected.size ? `Resync selected (${selected.size})` : "Resync selected";
  }

  function row(entry) {
    const box = canResync ? h("input", { type: "checkbox", "aria-label": `Select event ${entry.id}`, checked: selected.has(entry.id),
      onchange: (e) => { e.target.checked ? selected.add(entry.id) : selected.delete(entry.id); updateBulk(); } }) : "";
    return h("tr", { "data-event": entry.id, "data-status": entry.status },
      h("td", {}, box),
      h("td", {}, when(entry.receivedAt)),
      h("td", {}, h("a", { href: `#/touchpoints/${touchpointId}/events/${entry.id}`, class: "mono" }, entry.id.slice(0, 8) + "…" + entry.id.slice(-4))),
      h("td", {}, badge(entry.status)),
      h("td", { class: "numeric" }, String(entry.attempts)),
      h("td", { class: "mono" }, entry.orderingKey || entry.dedupeKey || ""),
      h("td", { class: "error-text" }, entry.lastError || ""));
  }

  function matches(entry) {
    if (filters.status && entry.status !== filters.status) return false;
    if (filters.search && entry.id !== filters.search && entry.dedupeKey !== filters.search && entry.orderingKey !== filters.search) return false;
    const received = new Date(entry.receivedAt).getTime();
    if (filters.from && received < new Date(filters.from).getTime()) return false;
    if (filters.to && received > new Date(filters.to).getTime()) return false;
    return true;
  }

  async function load() {
    replace(message);
    const after = cursors[cursors.length - 1];
    try {
      const data = await session.api.request(`query Bucket($id: ID!, $status: EventStatus, $from: DateTime, $to: DateTime, $search: String, $first: Int!, $after: String) {
        resyncBucket(touchpointId: $id, status: $status, from: $from, to: $to, search: $search, first: $first, after: $after) {
          edges { cursor node { ${ROW} } } pageInfo { hasNextPage endCursor } } }`, {
        id: touchpointId, status: filters.status || null, from: isoFrom(filters.from), to: isoFrom(filters.to),
        search: filters.search || null, first: Number(filters.first), after,
      });
      page = data.resyncBucket;
      rows.clear();
      const fragment = document.createDocumentFragment();
      for (const edge of page.edges) {
        const tr = row(edge.node);
        rows.set(edge.node.id, tr);
        fragment.append(tr);
      }
      tbody.replaceChildren(fragment);
      if (!page.edges.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No events match.")));
      selectAll.checked = false;
      renderPager();
    } catch (error) {
      replace(message, notice("error", describe(error)));
    }
  }

  function renderPager() {
    replace(pager,
      h("button", { type: "button", disabled: cursors.length === 1, onclick: () => { cursors.pop(); load(); } }, "Newer"),
      h("span", { class: "muted" }, `Page ${cursors.length}`),
      h("button", { type: "button", disabled: !page || !page.pageInfo.hasNextPage, onclick: () => { cursors.push(page.pageInfo.endCursor); load(); } }, "Older"));
  }

  async function resync(ids) {
    if (!ids.length) return;
    try {
      const data = await session.api.request("mutation Resync($ids: [ID!]!) { resyncEvents(ids: $ids) { id status } }", { ids });
      replace(message, notice("ok", `${data.resyncEvents.length} event(s) put back to UNPROCESSED.`));
      selected.clear();
      updateBulk();
    } catch (error) {
      replace(message, notice("error", describe(error)));
    }
  }

  async function resyncMatching() {
    if (!filters.status) {
      replace(message, notice("error", "Choose a status to resync every event that has it."));
      return;
    }
    try {
      const data = await session.api.request(`mutation ResyncMatching($id: ID!, $status: EventStatus!, $from: DateTime, $to: DateTime) {
        resyncMatching(touchpointId: $id, status: $status, from: $from, to: $to) { count } }`,
      { id: touchpointId, status: filters.status, from: isoFrom(filters.from), to: isoFrom(filters.to) });
      replace(message, notice("ok", `${data.resyncMatching.count} ${filters.status} event(s) put back to UNPROCESSED.`));
    } catch (error) {
      replace(message, notice("error", describe(error)));
    }
  }

  async function openEvent(id) {
    detail.hidden = false;
    replace(detail, h("p", { class: "muted" }, "Loading…"));
    try {
      const data = await session.api.request(`query Event($id: ID!) { bucketEntry(id: $id) {
        ${ROW} payload mappedOutput headers publishedGeneration
        attemptHistory { number startedAt durationMs responseStatus error responseSnippet generation trigger }
        logs(first: 20) { time level message } } }`, { id });
      const entry = data.bucketEntry;
      if (!entry) {
        replace(detail, notice("error", "No such event."));
        return;
      }
      replace(detail,
        h("div", { class: "section-head" }, h("h2", {}, "Event ", h("span", { class: "mono" }, entry.id)),
          h("a", { href: `#/touchpoints/${touchpointId}`, class: "button small" }, "Close")),
        h("p", {}, badge(entry.status), ` received ${when(entry.receivedAt)}, ${entry.attempts} attempt(s)`, entry.duplicates ? `, ${entry.duplicates} duplicate(s) absorbed` : ""),
        canResync ? h("button", { type: "button", id: "resync-one", onclick: () => resync([entry.id]) }, "Resync this event") : null,
        h("h3", {}, "Payload"), h("pre", { class: "json", id: "event-payload" }, pretty(entry.payload)),
        h("h3", {}, "Mapped output"), entry.mappedOutput === null ? h("p", { class: "muted" }, "Not mapped yet.") : h("pre", { class: "json", id: "event-output" }, pretty(entry.mappedOutput)),
        h("h3", {}, "Attempt history"),
        entry.attemptHistory.length === 0 ? h("p", { class: "muted" }, "No attempts yet.") :
          h("div", { class: "table-wrap" }, h("table", { class: "attempts", id: "attempt-history" },
            h("thead", {}, h("tr", {}, ["#", "Started", "Took", "Answer", "Error", "Trigger"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, entry.attemptHistory.map((a) => h("tr", {},
              h("td", {}, String(a.number)), h("td", {}, when(a.startedAt)), h("td", { class: "numeric" }, `${a.durationMs} ms`),
              h("td", {}, a.responseStatus === null ? "—" : String(a.responseStatus), a.responseSnippet ? h("div", { class: "mono snippet" }, a.responseSnippet) : null),
              h("td", { class: "error-text" }, a.error || ""), h("td", {}, a.trigger.toLowerCase())))))),
        h("h3", {}, "Log"),
        h("ul", { class: "log-lines" }, entry.logs.map((l) => h("li", {}, h("span", { class: `level level-${l.level.toLowerCase()}` }, l.level), ` ${when(l.time)} ${l.message}`))),
        h("h3", {}, "Headers"), h("pre", { class: "json" }, pretty(entry.headers)));
      detail.querySelector("h2").setAttribute("tabindex", "-1");
      detail.querySelector("h2").focus();
    } catch (error) {
      replace(detail, notice("error", describe(error)));
    }
  }

  const unsubscribe = session.api.subscribe(
    `subscription Bucket($id: ID!) { resyncBucket(touchpointId: $id) { kind status entry { ${ROW} } } }`,
    { id: touchpointId },
    (data) => {
      const change = data.resyncBucket;
      const entry = change.entry;
      const existing = rows.get(entry.id);
      if (existing) {
        const tr = row(entry);
        existing.replaceWith(tr);
        rows.set(entry.id, tr);
        tr.classList.add("changed");
      } else if (change.kind === "CREATED" && cursors.length === 1 && matches(entry)) {
        const empty = tbody.querySelector("td[colspan]");
        if (empty) empty.parentElement.remove();
        const tr = row(entry);
        rows.set(entry.id, tr);
        tbody.prepend(tr);
        tr.classList.add("changed");
        const limit = Number(filters.first);
        while (rows.size > limit) {
          const last = tbody.lastElementChild;
          rows.delete(last.dataset.event);
          last.remove();
        }
      }
      if (openEventId === entry.id) openEvent(entry.id);
      refreshCounts();
    },
    (error) => replace(message, notice("error", `Live updates stopped: ${describe(error)}`)));

  await load();
  if (openEventId) await openEvent(openEventId);
  return () => { unsubscribe(); clearTimeout(countsTimer); };
}

export async function logPage(session, main, touchpointId) {
  const touchpoint = await loadTouchpoint(session, touchpointId);
  document.title = `${touchpoint.name} · Log bucket · Hookplane`;
  let level = "";
  let paused = false;
  const held = [];
  const list = h("ol", { class: "log-tail", id: "log-tail", "aria-live": "off" });
  const message = h("div", { "aria-live": "polite" });
  const pausedNote = h("span", { class: "muted", id: "held" });
  const pause = h("button", { type: "button", id: "pause", "aria-pressed": "false", onclick: () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) {
      for (const entry of held.splice(0)) prepend(entry);
      pausedNote.textContent = "";
    }
  } }, "Pause");
  const levelSelect = h("select", { name: "level", onchange: () => { level = levelSelect.value; load(); } },
    h("option", { value: "" }, "All levels"), LEVELS.map((l) => h("option", { value: l }, `${l} and above`)));
  const MAX_LINES = 1000;

  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, touchpoint.name)),
    tabs(touchpointId, "logs"),
    h("div", { class: "filters" }, field("Level", levelSelect), pause, pausedNote),
    message,
    list);

  function line(entry) {
    return h("li", { class: `log-line level-${entry.level.toLowerCase()}`, "data-log": entry.id },
      h("time", { datetime: entry.time }, when(entry.time)), " ",
      h("span", { class: `level level-${entry.level.toLowerCase()}` }, entry.level), " ",
      h("span", { class: "message" }, entry.message),
      entry.eventId ? [" ", h("a", { href: `#/touchpoints/${touchpointId}/events/${entry.eventId}`, class: "jump" }, "event")] : null);
  }

  function atLeast(entry) {
    return !level || LEVELS.indexOf(entry.level) >= LEVELS.indexOf(level);
  }

  function prepend(entry) {
    list.prepend(line(entry));
    while (list.childElementCount > MAX_LINES) list.lastElementChild.remove();
  }

  let loading = null;
  async function load() {
    const early = [];
    loading = early;
    try {
      const data = await session.api.request(`query Logs($id: ID!, $level: LogLevel) {
        logBucket(touchpointId: $id, level: $level, first: 200) { edges { node { id eventId time level message } } } }`,
      { id: touchpointId, level: level || null });
      const fragment = document.createDocumentFragment();
      for (const edge of data.logBucket.edges) fragment.append(line(edge.node));
      list.replaceChildren(fragment);
      // Entries that arrived live while the page loaded, and are not in it.
      const shown = new Set(data.logBucket.edges.map((edge) => edge.node.id));
      for (const entry of early) if (!shown.has(entry.id)) prepend(entry);
    } catch (error) {
      replace(message, notice("error", describe(error)));
    } finally {
      if (loading === early) loading = null;
    }
  }

  const unsubscribe = session.api.subscribe(
    "subscription Logs($id: ID!) { logBucket(touchpointId: $id) { id eventId time level message } }",
    { id: touchpointId },
    (data) => {
      const entry = data.logBucket;
      if (!atLeast(entry)) return;
      if (loading) {
        loading.push(entry);
      } else if (paused) {
        held.push(entry);
        if (held.length > MAX_LINES) held.shift();
        pausedNote.textContent = `${held.length} new while paused`;
      } else {
        prepend(entry);
      }
    },
    (error) => replace(message, notice("error", `Live updates stopped: ${describe(error)}`)));
  await load();
  return () => unsubscribe();
}
