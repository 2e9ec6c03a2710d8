/*
 * The browser console (console/) in a headless Chromium against a real
 * broker: each flow end to end, with a screenshot of each.  The broker
 * takes an API key and HS256 tokens; a Node client of the test seeds
 * topics, publishes and reads back what the page did.
 */

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { connect } from "../../clients/js/dist/index.js";
import {
    audit, fill, launchBrowser, newPage, setValue, shot,
    startConsoleBroker, textOf, waitFor, waitText,
} from "./harness.mjs";

const KEY = "console-test-key-7f3a";
const SECRET = "a shared secret of the console tests, 32+ bytes long";
const EVERYTHING = { publish: ["**"], subscribe: ["**"], admin: ["**"] };

let broker;
let browser;
let node;       /* the test's own client */
let keysDir;

const b64url = (s) => Buffer.from(s).toString("base64url");

function token(claims) {
    const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
    const body = b64url(JSON.stringify({
        exp: Math.floor(Date.now() / 1000) + 3600, ...claims }));
    const sig = createHmac("sha256", SECRET).update(head + "." + body)
        .digest("base64url");
    return head + "." + body + "." + sig;
}

function consoleUrl() {
    const port = broker.nginx.port;
    return "http://127.0.0.1:" + port + "/console/?url="
        + encodeURIComponent("ws://127.0.0.1:" + port + "/ws")
        + "&status=/status";
}

/* a fresh page of the console, connected with the credential */
async function open(kind = "key", cred = KEY) {
    const page = await newPage(browser);
    await page.goto(consoleUrl());
    await page.waitForSelector("body[data-ready=true]");
    await page.click(`input[name=kind][value=${kind}]`);
    if (kind !== "none") {
        await fill(page, "#credential", cred);
    }
    await page.click("#connect-button");
    return page;
}

async function connected(page) {
    await waitText(page, "#conn-state", /^Connected to /, "connected");
    await waitText(page, "#topic-count", /^Topics /, "the topic list");
}

/* the page made no request to anywhere but the broker's server */
function ownOrigin(page) {
    const origin = "http://127.0.0.1:" + broker.nginx.port + "/";
    /* data: URLs are Chromium's own (the date picker's icon) */
    const foreign = page.requests.filter((u) => !u.startsWith(origin)
                                         && !u.startsWith("data:"));
    assert.deepEqual(foreign, []);
}

async function finish(page, { problems = [] } = {}) {
    ownOrigin(page);
    const unexpected = page.problems.filter(
        (p) => !problems.some((re) => re.test(p)));
    await page.done();
    assert.deepEqual(unexpected, []);
}

/* clicks a button once it is shown */
async function press(page, selector) {
    const b = await page.waitForSelector(selector, { visible: true });
    await b.click();
}

async function selectTopic(page, name) {
    await fill(page, "#topic-filter", name);
    const button = `#topic-list button[data-topic="${name}"]`;
    await page.waitForSelector(button);
    await page.click(button);
    await waitText(page, "#topic-name", (t) => t === name, "topic " + name);
    await page.waitForSelector("#schema-out dl");
}

before(async () => {
    keysDir = mkdtempSync(join(tmpdir(), "loom-browser-"));
    const secret = join(keysDir, "jwt.key");
    writeFileSync(secret, SECRET);
    broker = await startConsoleBroker({
        location: `loom_api_key ${KEY}; loom_jwt HS256 ${secret};`,
    });
    browser = await launchBrowser();
    node = await connect({ url: broker.url, apiKey: KEY, timeoutMs: 5000 });
});

after(async () => {
    await node?.close();
    await browser?.close();
    const bad = broker ? await broker.stop() : [];
    rmSync(keysDir, { recursive: true, force: true });
    assert.deepEqual(bad, []);
});

describe("connect", () => {
    test("with an API key", async () => {
        await node.registerTopic("c/key", { a: null });
        const page = await open("key");
        await connected(page);
        assert.match(await textOf(page, "#conn-state"), /dataloom\.v2|v1/);
        await page.waitForSelector('#topic-list [data-topic="c/key"]');
        await shot(page, "01-connect-key");
        await finish(page);
    });

    test("with a token", async () => {
        await node.registerTopic("c/token", { a: null });
        const page = await open("token", token({ sub: "console-web",
                                                 dataloom: EVERYTHING }));
        await connected(page);
        await page.waitForSelector('#topic-list [data-topic="c/token"]');
        await shot(page, "02-connect-token");
        await finish(page);
    });

    test("a token's permissions limit the topic list", async () => {
        await node.registerTopic("c/seen/1", { a: null });
        await node.registerTopic("c/hidden/1", { a: null });
        const page = await open("token", token({
            dataloom: { subscribe: ["c/seen/**"] } }));
        await connected(page);
        await page.waitForSelector('#topic-list [data-topic="c/seen/1"]');
        assert.equal(await page.$('#topic-list [data-topic="c/hidden/1"]'),
                     null);
        await finish(page);
    });

    test("a wrong key is shown as an error", async () => {
        const page = await open("key", "not-the-key");
        const msg = await waitText(page, "#connect-msg", /refused/,
                                   "the error");
        assert.match(msg, new RegExp("^Could not connect: .*the broker "
            + "refused the credential \\(401 unauthorized\\)"));
        assert.equal(await textOf(page, "#conn-state"), "Not connected");
        assert.ok(await page.$eval("#topics", (el) => el.hidden));
        /* the message is announced: it is in an alert region */
        assert.equal(await page.$eval("#connect-msg",
                                      (el) => el.getAttribute("role")),
                     "alert");
        await shot(page, "03-connect-wrong-key");
        /* Chromium logs the failed handshake and the 401 probe */
        await finish(page, { problems: [/WebSocket connection to/,
                                        /401/] });
    });
});

describe("topics", () => {
    test("the list, in pages, through the broker's listTopics pages",
         async () => {
        /* more than one listTopics page of the broker (about 1,000) */
        const n = 1050;
        const pending = [];
        for (let i = 0; i < n; i++) {
            pending.push(node.registerTopic("many/" + String(i)
                .padStart(4, "0"), { i: null }));
        }
        await Promise.all(pending);
        const page = await open();
        await connected(page);
        const all = (await node.listTopics()).length;
        assert.ok(all >= n);
        assert.equal(await textOf(page, "#topic-count"),
                     "Topics 1-50 of " + all);
        assert.equal(await page.$$eval("#topic-list li", (l) => l.length),
                     50);
        await fill(page, "#topic-filter", "many/");
        await waitText(page, "#topic-count",
                       (t) => t === "Topics 1-50 of " + n + " (" + all
                           + " in all)", "the filtered count");
        await page.click("#topics-next");
        await waitText(page, "#topic-count", /^Topics 51-100 of /,
                       "page 2");
        assert.equal(await page.$eval("#topic-list li button",
                                      (b) => b.dataset.topic), "many/0050");
        await fill(page, "#topic-filter", "many/1049");
        await waitText(page, "#topic-count",
                       (t) => t.startsWith("Topics 1-1 of 1 "), "one");
        await shot(page, "04-topics");
        await finish(page);
    });
});

describe("a topic", () => {
    test("its schema and its versions", async () => {
        const v0 = { type: "object", properties: { n: { type: "integer" } },
                     required: ["n"] };
        const v1 = { type: "object",
                     properties: { n: { type: "integer" },
                                   note: { type: "string" } },
                     required: ["n"] };
        await node.registerTopic("s/versions", v0,
                                 { schemaType: "json-schema",
                                   compatibility: "backward" });
        await node.updateSchema("s/versions", v1,
                                { schemaType: "json-schema" });
        const page = await open();
        await connected(page);
        await selectTopic(page, "s/versions");
        await shot(page, "05-schema");
        /* the contract's getSchema: versions [0, 1], current 1 */
        assert.ok(await page.$("#schema-versions"),
                  "no version list: the broker gave no getSchema answer");
        assert.deepEqual(await page.$$eval("#schema-versions button",
            (bs) => bs.map((b) => b.textContent)),
            ["v0", "v1 (current)"]);
        assert.equal(await textOf(page, "#schema-type"), "JSON Schema");
        assert.equal(await textOf(page, "#schema-compat"), "backward");
        assert.deepEqual(JSON.parse(await textOf(page, "#schema-out pre")),
                         v1);
        await page.click('#schema-versions button[data-version="0"]');
        await waitText(page, "#schema-version", (t) => t === "0",
                       "version 0 shown");
        assert.deepEqual(JSON.parse(await textOf(page, "#schema-out pre")),
                         v0);
        assert.equal(await page.$eval(
            '#schema-versions button[data-version="0"]',
            (b) => b.getAttribute("aria-pressed")), "true");
        await shot(page, "06-schema-version-0");
        await finish(page);
    });

    test("its latest value", async () => {
        await node.registerTopic("v/latest", { a: null, b: null });
        const rev = await node.publish("v/latest", { a: 1, b: "two" });
        const page = await open();
        await connected(page);
        await selectTopic(page, "v/latest");
        await page.waitForSelector("#value-out pre");
        assert.deepEqual(JSON.parse(await textOf(page, "#value-out pre")),
                         { a: 1, b: "two" });
        if (rev !== undefined) {
            assert.equal(await textOf(page, "#value-rev"), String(rev));
        }
        await node.publish("v/latest", { a: 2, b: "three" });
        await page.click("#value-refresh");
        await waitFor(async () => (await textOf(page, "#value-out pre"))
                      .includes("three"), "the new value");
        await shot(page, "07-latest-value");
        await finish(page);
    });

    test("a live subscription sees a publish made from Node", async () => {
        await node.registerTopic("live/1", { m: null });
        const first = await node.publish("live/1", { m: "before" });
        const page = await open();
        await connected(page);
        await selectTopic(page, "live/1");
        await page.click("#live-toggle");
        await waitText(page, "#live-msg", /^Watching/, "watching");
        assert.equal(await page.$eval("#live-toggle",
                                      (b) => b.getAttribute("aria-pressed")),
                     "true");
        /* the snapshot first */
        assert.match(await textOf(page, "#live-list li.snapshot"),
                     /"m":"before"/);
        const rev = await node.publish("live/1", { m: "from node" });
        await node.sendWithoutSave("live/1", { m: "ephemeral" });
        await waitFor(async () => (await page.$$eval("#live-list li",
            (l) => l.length)) === 3, "two deliveries");
        const items = await page.$$eval("#live-list li",
            (l) => l.map((li) => li.textContent));
        /* newest first */
        assert.match(items[0], /sent \(not saved\).*"m":"ephemeral"/);
        assert.match(items[1], /published.*"m":"from node"/);
        if (rev !== undefined) {
            assert.equal(rev, first + 1);
            assert.match(items[1], new RegExp("^rev " + rev + " "));
        }
        await shot(page, "08-live");
        await page.click("#live-toggle");
        await waitText(page, "#live-msg", /^Stopped/, "stopped");
        assert.equal(await page.$eval("#live-toggle",
                                      (b) => b.getAttribute("aria-pressed")),
                     "false");
        await finish(page);
    });
});

describe("publish", () => {
    test("accepted from the fields", async () => {
        await node.registerTopic("p/ok", { name: null,
                                           size: { w: null } });
        const page = await open();
        await connected(page);
        await selectTopic(page, "p/ok");
        await fill(page, '[data-field="name"]', '"box"');
        await fill(page, '[data-field="size"]', '{"w": 2}');
        await press(page, '#publish-form button[value="publish"]');
        await waitText(page, "#publish-msg", /^Published/, "published");
        assert.deepEqual((await node.get("p/ok")).data,
                         { name: "box", size: { w: 2 } });
        await finish(page);
    });

    test("a key-set refusal is shown with the form", async () => {
        await node.registerTopic("p/keys", { a: null, b: null });
        const page = await open();
        await connected(page);
        await selectTopic(page, "p/keys");
        await fill(page, '[data-field="a"]', "1");
        await press(page, '#publish-form button[value="publish"]');
        await waitText(page, "#publish-form .form-errors",
                       (t) => t === "Refused: 400 schema doesn't match "
                           + "topics current schema", "the refusal");
        /* a field that is not JSON is marked before anything is sent */
        await fill(page, '[data-field="b"]', "not json");
        await press(page, '#publish-form button[value="publish"]');
        await waitText(page, "#publish-form .form-errors", /not JSON/,
                       "the local error");
        assert.equal(await page.$eval('[data-field="b"]',
                                      (i) => i.getAttribute("aria-invalid")),
                     "true");
        assert.equal((await node.get("p/keys")).data, null);
        await shot(page, "09-publish-refused-keys");
        await finish(page);
    });

    test("a JSON Schema refusal is shown at the field", async () => {
        await node.registerTopic("p/typed", {
            type: "object",
            properties: { n: { type: "integer" }, tag: { type: "string" } },
            required: ["n", "tag"],
        }, { schemaType: "json-schema" });
        const page = await open();
        await connected(page);
        await selectTopic(page, "p/typed");
        assert.equal(await textOf(page, "#schema-type"), "JSON Schema",
                     "the broker took the schema as a key set");
        await fill(page, '[data-field="n"]', '"seven"');
        await press(page, '#publish-form button[value="publish"]');
        await waitText(page, "#publish-form .form-errors", /^Refused: 400/,
                       "the refusal");
        await shot(page, "10-publish-refused-at-field");
        /* the type error at n, the missing tag at tag */
        const at = (f) => page.$eval(`[data-field="${f}"]`, (i) => ({
            invalid: i.getAttribute("aria-invalid"),
            error: document.getElementById(
                i.getAttribute("aria-describedby").split(" ")[1])
                .textContent,
        }));
        assert.deepEqual(await at("n"), { invalid: "true",
                                          error: "wrong type (type)" });
        const tag = await at("tag");
        assert.equal(tag.invalid, "true");
        assert.match(tag.error, /\(required\)$/);
        /* the focus moved to the first field in error */
        assert.equal(await page.evaluate(
            () => document.activeElement.dataset.field), "n");
        assert.equal((await node.get("p/typed")).data, null);
        await finish(page);
    });
});

describe("history", () => {
    test("by revision and by time", async () => {
        await node.registerTopic("h/1", { i: null });
        for (let i = 1; i <= 5; i++) {
            await node.publish("h/1", { i });
            /* distinct times for the time bounds */
            await new Promise((r) => setTimeout(r, 15));
        }
        const all = await node.history("h/1", {});
        assert.equal(all.entries.length, 5);
        const page = await open();
        await connected(page);
        await selectTopic(page, "h/1");
        const revs = () => page.$$eval("#history-out tbody tr",
            (l) => l.map((tr) => Number(tr.dataset.rev)));
        const r = all.entries.map((e) => e.rev);

        await fill(page, "#history-since", String(r[1]));
        await fill(page, "#history-limit", "2");
        await page.click("#history-read");
        await waitText(page, "#history-msg", /^Entries/, "a page");
        assert.deepEqual(await revs(), [r[2], r[3]]);
        await page.click("#history-next");
        await waitText(page, "#history-msg",
                       (t) => t === "Entries " + r[4] + " to " + r[4] + ".",
                       "the next page");
        assert.deepEqual(await revs(), [r[4]]);
        assert.match(await textOf(page, "#history-out tbody"), /\{"i":5\}/);
        await shot(page, "11-history-by-rev");

        /* by time: only the middle entry (UTC, to the millisecond) */
        const utc = (ms) => new Date(ms).toISOString().replace("Z", "");
        await page.click("input[name=mode][value=time]");
        await fill(page, "#history-limit", "10");
        await setValue(page, "#history-from", utc(all.entries[2].ts));
        await setValue(page, "#history-until", utc(all.entries[2].ts));
        await page.click("#history-read");
        await waitText(page, "#history-msg", (t) => t === "Entries "
                       + r[2] + " to " + r[2] + ".", "the time range");
        assert.deepEqual(await revs(), [r[2]]);
        /* newest first, from the third on */
        await setValue(page, "#history-until", "");
        await page.click("input[name=reverse]");
        await page.click("#history-read");
        await waitText(page, "#history-msg", (t) => t === "Entries "
                       + r[4] + " to " + r[2] + ".", "newest first");
        assert.deepEqual(await revs(), [r[4], r[3], r[2]]);
        await shot(page, "12-history-by-time");
        await finish(page);
    });
});

describe("status", () => {
    test("the node's status document", async () => {
        const page = await open();
        await connected(page);
        await page.click("#status-refresh");
        await waitText(page, "#status-msg", /^Read at/, "the status");
        const pids = await page.$$eval("#status-out tbody tr",
            (l) => l.map((tr) => tr.dataset.pid));
        const st = await (await fetch("http://127.0.0.1:"
                                      + broker.nginx.port + "/status"))
            .json();
        assert.deepEqual(pids, st.redis.workers.map((w) => String(w.pid)));
        assert.match(await textOf(page, "#status-out tbody"), /up.*up/);
        const dl = await page.$$eval("#status-out dl dt, #status-out dl dd",
            (l) => l.map((e) => e.textContent));
        const at = dl.indexOf("Connections");
        /* this page's connection and the test's own, at least */
        assert.ok(Number(dl[at + 1]) >= 2, "connections: " + dl[at + 1]);
        await shot(page, "13-status");

        /* a status URL that does not answer is an error on the page */
        await fill(page, "#status-url", "/console/nowhere.json");
        await page.click("#status-refresh");
        await waitText(page, "#status-msg", /404/, "the failure");
        await finish(page, { problems: [/404/] });
    });
});

describe("the page", () => {
    test("every control has a label", async () => {
        await node.registerTopic("a11y/1", { a: null, b: null });
        const page = await open();
        await connected(page);
        await selectTopic(page, "a11y/1");
        const unlabelled = await page.$$eval("input, textarea, select",
            (l) => l.filter((el) => el.type !== "hidden"
                            && el.labels.length === 0
                            && !el.getAttribute("aria-label"))
                .map((el) => el.outerHTML));
        assert.deepEqual(unlabelled, []);
        await finish(page);
    });

    test("no accessibility violations (axe-core, WCAG 2.1 AA)", async () => {
        await node.registerTopic("a11y/2", { a: null, b: null });
        await node.publish("a11y/2", { a: 1, b: 2 });
        const page = await open();
        await connected(page);
        await page.click("#status-refresh");
        await waitText(page, "#status-msg", /^Read at/, "the status");
        assert.deepEqual(await audit(page), [], "connected");
        await selectTopic(page, "a11y/2");
        await page.click("#live-toggle");
        await waitText(page, "#live-msg", /^Watching/, "watching");
        await fill(page, '[data-field="a"]', "x");
        await press(page, '#publish-form button[value="publish"]');
        await waitText(page, "#publish-form .form-errors", /not JSON/,
                       "a field in error");
        await page.click("#history-read");
        await waitText(page, "#history-msg", /^Entries/, "history");
        assert.deepEqual(await audit(page), [], "a topic open");
        await page.emulateMediaFeatures([
            { name: "prefers-color-scheme", value: "dark" }]);
        assert.deepEqual(await audit(page), [], "dark");
        await shot(page, "14-dark");
        await finish(page);
    });
});
