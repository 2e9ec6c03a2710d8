/*
 * History of a topic (protocol.md 15.7): by revision (after a revision,
 * forwards or newest first) or by time (bounds on ts, in UTC), in pages.
 */

import { byId, clear, errorText, h, say, timeEl } from "./dom.js";

let ctx = null;     /* { client, topic } */
let last = null;    /* the request of the page shown, and its entries */

/* "2026-12-02T00:10:05.123" read as UTC; undefined when empty */
function utcMs(value, what) {
    if (value === "") {
        return undefined;
    }
    const ms = Date.parse(value + "Z");
    if (Number.isNaN(ms)) {
        throw new Error(what + " is not a date and time");
    }
    return ms;
}

function intOf(value, what) {
    if (value === "") {
        return undefined;
    }
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) {
        throw new Error(what + " must be an integer of 0 or more");
    }
    return n;
}

function request() {
    const f = byId("history-form");
    const byTime = f.elements.mode.value === "time";
    const opts = { limit: intOf(f.elements.limit.value, "Limit") ?? 20 };
    if (f.elements.reverse.checked) {
        opts.reverse = true;
    }
    if (byTime) {
        const from = utcMs(f.elements.from.value, "From");
        const until = utcMs(f.elements.until.value, "Until");
        if (from !== undefined) {
            opts.from = from;
        }
        if (until !== undefined) {
            opts.until = until;
        }
    } else {
        const since = intOf(f.elements.since.value, "After revision");
        if (since !== undefined) {
            opts.since = since;
        }
    }
    return opts;
}

function render(opts, page) {
    const rows = page.entries.map((e) => h("tr", { "data-rev": e.rev },
        h("th", { scope: "row", text: String(e.rev) }),
        h("td", {}, timeEl(e.ts)),
        h("td", { text: e.senderId ?? "" }),
        h("td", {}, h("code", { text: JSON.stringify(e.data) }))));
    clear(byId("history-out"),
          h("table", {},
            h("caption", { text: "History of " + ctx.topic + ": "
                + page.entries.length + " entries; top revision "
                + page.rev + ", epoch " + page.epoch }),
            h("thead", {}, h("tr", {},
                ["Rev", "Time (UTC)", "Sender", "Data"]
                    .map((t) => h("th", { scope: "col", text: t })))),
            h("tbody", {}, rows)));
    const more = page.entries.length > 0
        && page.entries.length >= (opts.limit ?? 1);
    byId("history-next").disabled = !more;
}

async function read(opts) {
    const msg = byId("history-msg");
    say(msg, "Reading ...");
    try {
        const page = await ctx.client.history(ctx.topic, opts);
        last = { opts, entries: page.entries };
        render(opts, page);
        say(msg, page.entries.length === 0 ? "No entries match."
            : "Entries " + page.entries[0].rev + " to "
              + page.entries[page.entries.length - 1].rev + ".", "ok");
    } catch (e) {
        say(msg, "Could not read the history: " + errorText(e), "error");
    }
}

export function showHistory(client, topic) {
    ctx = { client, topic };
    last = null;
    clear(byId("history-out"));
    say(byId("history-msg"), "");
    byId("history-next").disabled = true;
}

export function setupHistory() {
    const f = byId("history-form");
    const modes = () => {
        const byTime = f.elements.mode.value === "time";
        byId("history-rev").hidden = byTime;
        byId("history-time").hidden = !byTime;
    };
    for (const r of f.elements.mode) {
        r.addEventListener("change", modes);
    }
    modes();
    f.addEventListener("submit", (ev) => {
        ev.preventDefault();
        if (ctx === null) {
            return;
        }
        let opts;
        try {
            opts = request();
        } catch (e) {
            say(byId("history-msg"), e.message, "error");
            return;
        }
        read(opts);
    });
    byId("history-next").addEventListener("click", () => {
        if (ctx === null || last === null || last.entries.length === 0) {
            return;
        }
        const end = last.entries[last.entries.length - 1];
        read({ ...last.opts, since: end.rev });
    });
}

