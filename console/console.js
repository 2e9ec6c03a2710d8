/*
 * The Data Loom console: connect, the topic list, and the wiring of the
 * other parts (topic.js, history.js, status.js).  Everything it loads
 * comes from its own location; the broker URL and the status URL are the
 * page's settings (query arguments "url" and "status", then what was
 * used last, then this host's /ws and /loom/status).  The credential is
 * never stored.
 */

import { connect } from "./dataloom/index.js";
import { byId, clear, errorText, h, say } from "./dom.js";
import { setupHistory } from "./history.js";
import { loadStatus, setupStatus } from "./status.js";
import { closeTopic, openTopic, setupTopic } from "./topic.js";

const PAGE = 50;
/* what a subprotocol entry may hold (RFC 7230 tchar) */
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

let client = null;
let topics = [];
let shown = [];
let page = 0;
let selected = null;

function settings() {
    const q = new URLSearchParams(location.search);
    const ws = (location.protocol === "https:" ? "wss://" : "ws://")
        + location.host + "/ws";
    const stored = (k) => {
        try {
            return localStorage.getItem("dataloom-console." + k);
        } catch {
            return null;
        }
    };
    byId("url").value = q.get("url") ?? stored("url") ?? ws;
    byId("status-url").value = q.get("status") ?? stored("status")
        ?? "/loom/status";
}

function remember(k, v) {
    try {
        localStorage.setItem("dataloom-console." + k, v);
    } catch {
        /* storage refused: nothing to keep */
    }
}

function stateText(s) {
    const el = byId("conn-state");
    const text = {
        connecting: "Connecting ...",
        open: "Connected to " + byId("url").value.trim()
            + (client && client.v2 ? " (dataloom.v2)" : " (v1)"),
        reconnecting: "Connection lost: reconnecting ...",
        closed: "Not connected",
    }[s];
    el.textContent = text;
    el.dataset.state = s;
    document.body.dataset.connected = s === "open" ? "true" : "false";
}

/*
 * A browser does not tell why a WebSocket handshake failed: ask the same
 * URL over plain HTTP with the credential, which the broker checks first
 * (a wrong one gets 401 before anything else).  Same origin only: another
 * origin's answer is not readable without CORS.
 */
async function why(url, cred) {
    let http;
    try {
        http = new URL(url.replace(/^ws/, "http"));
    } catch {
        return "the URL is not valid.";
    }
    if (http.origin !== location.origin) {
        return "the URL is wrong, the credential is refused, or the broker "
            + "is down (a browser does not say which).";
    }
    try {
        const res = await fetch(http, {
            cache: "no-store",
            headers: cred ? { Authorization: "Bearer " + cred } : {},
        });
        if (res.status === 401) {
            return "the broker refused the credential (401 unauthorized).";
        }
        if (res.status === 404) {
            return "there is no broker at this URL (404).";
        }
        return "the broker answered " + res.status + " to a plain request "
            + "with this credential; see its error log.";
    } catch {
        return "the broker cannot be reached.";
    }
}

async function doConnect(ev) {
    ev.preventDefault();
    const f = byId("connect-form");
    const url = byId("url").value.trim();
    const kind = f.elements.kind.value;
    const cred = byId("credential").value.trim();
    const msg = byId("connect-msg");
    const button = byId("connect-button");

    await disconnect();
    const opts = { url, timeoutMs: 10000,
                   reconnect: { initialDelayMs: 250, maxDelayMs: 10000 } };
    if (kind !== "none") {
        if (cred === "") {
            say(msg, "Give the " + (kind === "token" ? "token" : "key")
                + ", or choose no credential.", "error");
            byId("credential").focus();
            return;
        }
        opts[kind === "token" ? "token" : "apiKey"] = cred;
        /* a subprotocol entry keeps it out of URLs and logs */
        opts.credentialIn = TOKEN_CHARS.test(cred) ? "protocol" : "query";
    }
    remember("url", url);
    button.disabled = true;
    say(msg, "Connecting to " + url + " ...");
    stateText("connecting");
    try {
        client = await connect(opts);
    } catch (e) {
        stateText("closed");
        say(msg, "Could not connect: " + errorText(e) + "; "
            + await why(url, kind === "none" ? "" : cred), "error");
        button.disabled = false;
        return;
    }
    button.disabled = false;
    const c = client;
    c.on("state", (s) => {
        if (client === c) {
            stateText(s);
        }
    });
    c.on("error", (e) => {
        if (client === c) {
            say(msg, errorText(e), "error");
        }
    });
    stateText("open");
    say(msg, "");
    byId("disconnect-button").hidden = false;
    byId("topics").hidden = false;
    await loadTopics();
}

async function disconnect() {
    const c = client;
    client = null;
    await closeTopic();
    topics = [];
    selected = null;
    renderTopics();
    byId("topics").hidden = true;
    byId("disconnect-button").hidden = true;
    stateText("closed");
    if (c !== null) {
        await c.close();
    }
}

async function loadTopics() {
    const msg = byId("topics-msg");
    say(msg, "Reading the topics ...");
    try {
        /* the broker sorts each page, not the pages: sort them all */
        topics = (await client.listTopics()).sort(
            (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        say(msg, "");
    } catch (e) {
        topics = [];
        say(msg, "Could not list the topics: " + errorText(e), "error");
    }
    page = 0;
    renderTopics();
}

function renderTopics() {
    const filter = byId("topic-filter").value.trim();
    shown = filter === "" ? topics
        : topics.filter((t) => t.name.includes(filter));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(page, pages - 1);
    const slice = shown.slice(page * PAGE, (page + 1) * PAGE);
    clear(byId("topic-list"), slice.map((t) => h("li", {},
        h("button", {
            type: "button", class: "topic", "data-topic": t.name,
            "aria-current": t.name === selected ? "true" : false,
            onclick: () => choose(t),
        }, t.name, h("span", { class: "badge",
                               text: " v" + t.schema.version })))));
    const first = shown.length === 0 ? 0 : page * PAGE + 1;
    byId("topic-count").textContent = shown.length === 0
        ? (topics.length === 0 ? "No topics." : "No topic matches.")
        : "Topics " + first + "-" + (page * PAGE + slice.length) + " of "
          + shown.length + (shown.length !== topics.length
                            ? " (" + topics.length + " in all)" : "");
    byId("topics-prev").disabled = page === 0;
    byId("topics-next").disabled = page >= pages - 1;
}

async function choose(t) {
    selected = t.name;
    renderTopics();
    await openTopic(client, t);
    byId("topic-name").focus();
}

function boot() {
    settings();
    byId("connect-form").addEventListener("submit", doConnect);
    byId("disconnect-button").addEventListener("click", async () => {
        await disconnect();
        say(byId("connect-msg"), "Disconnected.");
    });
    byId("topic-filter").addEventListener("input", () => {
        page = 0;
        renderTopics();
    });
    byId("topics-prev").addEventListener("click", () => {
        page--;
        renderTopics();
    });
    byId("topics-next").addEventListener("click", () => {
        page++;
        renderTopics();
    });
    byId("topics-refresh").addEventListener("click", () => loadTopics());
    byId("status-url").addEventListener("change",
        (ev) => remember("status", ev.target.value.trim()));
    const kinds = byId("connect-form").elements.kind;
    const credOn = () => {
        byId("credential-row").hidden = kinds.value === "none";
    };
    for (const r of kinds) {
        r.addEventListener("change", credOn);
    }
    credOn();
    setupTopic();
    setupHistory();
    setupStatus();
    stateText("closed");
    document.body.dataset.ready = "true";
    loadStatus();
}

boot();
