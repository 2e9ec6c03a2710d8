/*
 * One topic: its schema and kept versions (getSchema), its latest value
 * (get), a live subscription with snapshot, and the publish form.
 */

import { byId, clear, errorText, h, jsonBlock, say, timeEl }
    from "./dom.js";
import { PublishForm } from "./form.js";
import { showHistory } from "./history.js";

const MAX_DELIVERIES = 200;

let client = null;
let topic = null;
/* the topic's listTopics entry: the schema when there is no getSchema */
let entry = null;
let current = null;
let sub = null;
let form = null;

function unknownAction(e) {
    return e && e.code === 400
        && String(e.message).startsWith("unknown action");
}

function renderSchema(s, shown) {
    const facts = h("dl", { class: "facts" },
        h("dt", { text: "Version" }),
        h("dd", { id: "schema-version", text: String(s.version) }),
        h("dt", { text: "Type" }),
        h("dd", { id: "schema-type",
                  text: s.schemaType === "json-schema" ? "JSON Schema"
                      : "key set" }));
    if (s.compatibility) {
        facts.append(h("dt", { text: "Compatibility" }),
                     h("dd", { id: "schema-compat", text: s.compatibility }));
    }
    let versions;
    if (Array.isArray(s.versions)) {
        versions = h("nav", { "aria-label": "Schema versions" },
            h("ul", { class: "versions", id: "schema-versions" },
              s.versions.map((v) => h("li", {}, h("button", {
                  type: "button", "data-version": v,
                  "aria-pressed": v === shown ? "true" : "false",
                  onclick: () => loadSchema(v),
              }, "v" + v + (v === current.version ? " (current)" : ""))))));
    } else {
        versions = h("p", { class: "note", id: "schema-degraded",
            text: "This broker does not answer getSchema: the schema "
                + "shown is the one listTopics gives, and its earlier "
                + "versions cannot be shown." });
    }
    clear(byId("schema-out"), facts, versions,
          jsonBlock(s.schema, "schema version " + s.version));
}

async function loadSchema(version) {
    const t = topic;
    const msg = byId("schema-msg");
    let s;
    try {
        s = await client.getSchema(t, version);
    } catch (e) {
        if (t !== topic) {
            return;
        }
        if (!unknownAction(e)) {
            say(msg, "Could not read the schema: " + errorText(e), "error");
            return;
        }
        s = { schema: entry.schema.schema, version: entry.schema.version,
              versions: null, schemaType: "keys", compatibility: null };
    }
    if (t !== topic) {
        return;
    }
    say(msg, "");
    if (version === undefined) {
        current = s;
        form.setSchema(s.schema, s.schemaType);
    }
    renderSchema(s, s.version);
}

async function loadValue() {
    const t = topic;
    const msg = byId("value-msg");
    try {
        const v = await client.get(t);
        if (t !== topic) {
            return;
        }
        const facts = h("dl", { class: "facts" });
        if (v.rev !== undefined) {
            facts.append(h("dt", { text: "Revision" }),
                         h("dd", { id: "value-rev", text: String(v.rev) }),
                         h("dt", { text: "Time (UTC)" }),
                         h("dd", {}, timeEl(v.ts)),
                         h("dt", { text: "Epoch" }),
                         h("dd", { text: String(v.epoch) }));
        }
        clear(byId("value-out"), facts,
              v.data === null
                  ? h("p", { class: "note", text: "Nothing published yet." })
                  : jsonBlock(v.data, "latest value"));
        say(msg, "");
    } catch (e) {
        if (t === topic) {
            say(msg, "Could not read the value: " + errorText(e), "error");
        }
    }
}

function logLine(li) {
    const list = byId("live-list");
    list.prepend(li);
    while (list.children.length > MAX_DELIVERIES) {
        list.lastElementChild.remove();
    }
}

function onDelivery(d) {
    logLine(h("li", { class: "delivery", "data-rev": d.rev ?? false },
        h("span", { class: "meta" },
          d.rev !== undefined ? "rev " + d.rev + " " : "",
          d.ts !== undefined ? timeEl(d.ts) : "",
          " " + (d.action === "sendWithoutSave" ? "sent (not saved)"
                                               : "published")
          + " by " + d.senderId),
        h("code", { text: JSON.stringify(d.data) })));
}

function onRecovery(r) {
    logLine(h("li", { class: "note" }, r.recovered
        ? "Resumed after " + r.reason + ": " + r.replayed
          + " missed revisions replayed."
        : "Could not resume after " + r.reason + " (revisions lost); "
          + (r.value ? "the value is now revision " + r.rev + ": "
             + JSON.stringify(r.value.data) : "read the value again.")));
}

function liveButton(on) {
    const b = byId("live-toggle");
    b.textContent = on ? "Stop watching" : "Watch live";
    b.setAttribute("aria-pressed", on ? "true" : "false");
}

async function stopLive() {
    const s = sub;
    sub = null;
    liveButton(false);
    if (s !== null) {
        try {
            await s.unsubscribe();
        } catch {
            /* the connection is gone: so is the subscription */
        }
    }
}

async function toggleLive() {
    const msg = byId("live-msg");
    if (sub !== null) {
        await stopLive();
        say(msg, "Stopped.");
        return;
    }
    const t = topic;
    const b = byId("live-toggle");
    b.disabled = true;
    try {
        const s = await client.subscribe(t, onDelivery,
                                         { snapshot: true, onRecovery });
        if (t !== topic) {
            await s.unsubscribe();
            return;
        }
        sub = s;
        liveButton(true);
        const snap = s.snapshot;
        say(msg, snap === undefined ? "Watching."
            : "Watching from revision " + (snap.rev ?? "?") + ".", "ok");
        if (snap !== undefined) {
            logLine(h("li", { class: "snapshot", "data-rev": snap.rev },
                h("span", { class: "meta" },
                  "snapshot at rev " + (snap.rev ?? "?") + " "),
                h("code", { text: JSON.stringify(snap.data) })));
        }
    } catch (e) {
        say(msg, "Could not subscribe: " + errorText(e), "error");
    } finally {
        b.disabled = false;
    }
}

async function publish(action) {
    const msg = byId("publish-msg");
    say(msg, "");
    let data;
    try {
        data = form.value();
    } catch (e) {
        say(form.summary, e.message, "error");
        return;
    }
    const t = topic;
    try {
        if (action === "sendWithoutSave") {
            await client.sendWithoutSave(t, data);
            say(msg, "Sent (not saved).", "ok");
            return;
        }
        const rev = await client.publish(t, data);
        say(msg, rev !== undefined ? "Published as revision " + rev + "."
                                   : "Published.", "ok");
        if (t === topic) {
            loadValue();
        }
    } catch (e) {
        if (e.fromServer) {
            form.showRefusal(e);
        } else {
            say(form.summary, "Not published: " + errorText(e), "error");
        }
    }
}

export async function openTopic(c, e) {
    await closeTopic();
    client = c;
    topic = e.name;
    entry = e;
    current = null;
    byId("topic-name").textContent = topic;
    byId("topic").hidden = false;
    byId("placeholder").hidden = true;
    for (const id of ["schema-out", "value-out", "live-list"]) {
        clear(byId(id));
    }
    for (const id of ["schema-msg", "value-msg", "live-msg",
                      "publish-msg"]) {
        say(byId(id), "");
    }
    showHistory(c, topic);
    await Promise.all([loadSchema(), loadValue()]);
}

export async function closeTopic() {
    await stopLive();
    topic = null;
    byId("topic").hidden = true;
    byId("placeholder").hidden = false;
}

export function setupTopic() {
    const f = byId("publish-form");
    form = new PublishForm(f);
    f.addEventListener("submit", (ev) => {
        ev.preventDefault();
        publish(ev.submitter && ev.submitter.value === "send"
                ? "sendWithoutSave" : "publish");
    });
    byId("value-refresh").addEventListener("click", () => loadValue());
    byId("live-toggle").addEventListener("click", () => toggleLive());
    byId("live-clear").addEventListener("click",
                                        () => clear(byId("live-list")));
}
