/* The node's status: the JSON of a loom_status location, fetched. */

import { byId, clear, h, jsonBlock, say } from "./dom.js";

const COUNTS = [
    ["connections", "Connections"],
    ["connections_total", "Connections since start"],
    ["subscriptions", "Subscriptions"],
    ["topics_subscribed", "Topics subscribed"],
    ["publishes", "Publishes"],
    ["sends", "Sends without save"],
    ["deliveries", "Deliveries"],
    ["rejected", "Requests refused (400)"],
    ["errors", "Errors (500)"],
    ["slow_consumers", "Slow consumers closed"],
    ["protocol_errors", "Protocol errors"],
];

let timer;

function row(label, value) {
    return [h("dt", { text: label }), h("dd", { text: String(value) })];
}

function render(st) {
    const out = byId("status-out");
    const dl = h("dl", { class: "counts" });
    for (const [k, label] of [["version", "Version"],
                              ["workers", "Workers"], ...COUNTS]) {
        if (k in st) {
            dl.append(...row(label, st[k]));
        }
    }
    const redis = st.redis ?? {};
    dl.append(...row("Redis", redis.address ?? "?"),
              ...row("Redis reconnects", redis.reconnects ?? 0));
    const workers = Array.isArray(redis.workers) ? redis.workers : [];
    const table = h("table", {},
        h("caption", { text: "Workers and their Redis links" }),
        h("thead", {}, h("tr", {},
            ["Pid", "Command link", "Subscriber link", "Connections"]
                .map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, workers.map((w) => h("tr", { "data-pid": w.pid },
            h("td", { text: String(w.pid) }),
            h("td", { class: "link-" + w.redis_command,
                      text: String(w.redis_command) }),
            h("td", { class: "link-" + w.redis_subscriber,
                      text: String(w.redis_subscriber) }),
            h("td", { text: String(w.connections) })))));
    const topics = st.topics && typeof st.topics === "object"
        ? Object.keys(st.topics).length : 0;
    clear(out, dl, table,
          h("details", {},
            h("summary", { text: "The whole document (" + topics
                           + " topics with subscribers)" }),
            jsonBlock(st, "status document")));
}

export async function loadStatus() {
    const url = byId("status-url").value.trim();
    const msg = byId("status-msg");
    if (url === "") {
        say(msg, "Give the URL of the status location.", "error");
        return;
    }
    say(msg, "Reading " + url + " ...");
    try {
        const res = await fetch(url, { cache: "no-store",
                                       headers: { Accept:
                                                  "application/json" } });
        if (!res.ok) {
            throw new Error(url + " answered " + res.status + " "
                            + res.statusText);
        }
        const st = await res.json();
        render(st);
        say(msg, "Read at " + new Date().toISOString(), "ok");
    } catch (e) {
        say(msg, "Could not read the status: " + e.message, "error");
    }
}

export function setupStatus() {
    byId("status-form").addEventListener("submit", (ev) => {
        ev.preventDefault();
        loadStatus();
    });
    byId("status-auto").addEventListener("change", (ev) => {
        clearInterval(timer);
        timer = undefined;
        if (ev.target.checked) {
            loadStatus();
            timer = setInterval(loadStatus, 5000);
        }
    });
}
