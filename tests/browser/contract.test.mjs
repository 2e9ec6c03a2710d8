/*
 * The console against the wire forms of typed schemas (getSchema, and
 * the "errors" of a refused publish), spoken by a scripted broker: what
 * the page shows for each, and what it sends.  The same flows run
 * against the real broker in console.test.mjs.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
    audit, fill, launchBrowser, newPage, shot, textOf, waitFor, waitText,
} from "./harness.mjs";
import { ScriptedBroker } from "./scripted.mjs";

const V1 = { type: "object",
             properties: { n: { type: "integer" } }, required: ["n"] };
const V2 = { type: "object",
             properties: { n: { type: "integer" }, tag: { type: "string" },
                           pos: { type: "array" } },
             required: ["n", "tag"] };

let broker;
let browser;
/* what the next publish is answered */
let refusal = null;

before(async () => {
    broker = await new ScriptedBroker({
        listTopics: () => ({ data: [
            { name: "typed", schema: { version: 2, schema: V2 } }] }),
        getSchema: (req) => {
            if (req.version === undefined || req.version === 2) {
                return { data: V2, version: 2, versions: [0, 1, 2],
                         schemaType: "json-schema",
                         compatibility: "backward" };
            }
            if (req.version === 1) {
                return { data: V1, version: 1, versions: [0, 1, 2],
                         schemaType: "json-schema",
                         compatibility: "backward" };
            }
            return { code: 404, message: "schema version " + req.version
                     + " of topic " + req.topic + " is not kept" };
        },
        get: () => ({ data: null, rev: 0, epoch: "e1", ts: 0 }),
        publish: () => refusal ?? { rev: 1 },
    }).start();
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await broker?.stop();
});

async function openTyped() {
    const page = await newPage(browser);
    await page.goto("http://127.0.0.1:" + broker.port + "/console/?url="
                    + encodeURIComponent(broker.url) + "&status=/status");
    await page.waitForSelector("body[data-ready=true]");
    await page.click("input[name=kind][value=none]");
    await page.click("#connect-button");
    await page.waitForSelector('#topic-list [data-topic="typed"]');
    await page.click('#topic-list [data-topic="typed"]');
    await page.waitForSelector("#schema-versions");
    return page;
}

function lastPublish() {
    return broker.got.filter((r) => r.action === "publish").at(-1);
}

async function done(page) {
    const problems = page.problems;
    await page.done();
    assert.deepEqual(problems, []);
}

test("getSchema: the current schema, its versions, an older one",
     async () => {
    const page = await openTyped();
    assert.equal(await textOf(page, "#schema-version"), "2");
    assert.equal(await textOf(page, "#schema-type"), "JSON Schema");
    assert.equal(await textOf(page, "#schema-compat"), "backward");
    assert.deepEqual(await page.$$eval("#schema-versions button",
        (l) => l.map((b) => [b.textContent, b.getAttribute("aria-pressed")])),
        [["v0", "false"], ["v1", "false"], ["v2 (current)", "true"]]);
    assert.deepEqual(JSON.parse(await textOf(page, "#schema-out pre")), V2);
    const asked = broker.got.filter((r) => r.action === "getSchema");
    assert.deepEqual(asked.map((r) => [r.topic, r.version]),
                     [["typed", undefined]]);

    await page.click('#schema-versions button[data-version="1"]');
    await waitText(page, "#schema-version", (t) => t === "1", "v1");
    assert.deepEqual(JSON.parse(await textOf(page, "#schema-out pre")), V1);
    assert.equal(broker.got.filter((r) => r.action === "getSchema").at(-1)
                 .version, 1);
    /* the publish form keeps the current version's fields */
    assert.deepEqual(await page.$$eval("#publish-form [data-field]",
        (l) => l.map((i) => i.dataset.field)), ["n", "tag", "pos"]);
    await shot(page, "c1-schema-versions");

    /* a version no longer kept: the server's 404, on the page */
    await page.click('#schema-versions button[data-version="0"]');
    await waitText(page, "#schema-msg", (t) => t === "Could not read the "
                   + "schema: 404 schema version 0 of topic typed is not "
                   + "kept", "the 404");
    await done(page);
});

test("a refusal's errors at their fields, the rest in the summary",
     async () => {
    refusal = { code: 400,
                message: "schema doesn't match topics current schema",
                errors: [
                    { instancePath: "/n", keyword: "type",
                      message: "wrong type" },
                    { instancePath: "/pos/1", keyword: "type",
                      message: "wrong type" },
                    { instancePath: "/x~1y", keyword: "false",
                      message: "no value is allowed" },
                    { instancePath: "", keyword: "required",
                      message: "property \"tag\" missing" },
                ] };
    const page = await openTyped();
    await fill(page, '[data-field="n"]', "1.5");
    await fill(page, '[data-field="pos"]', "[1, \"b\"]");
    await page.click('#publish-form button[value="publish"]');
    await waitText(page, "#publish-form .form-errors", /^Refused/,
                   "the refusal");
    /* what was sent: the fields' JSON, the empty one left out */
    assert.deepEqual(lastPublish().data, { n: 1.5, pos: [1, "b"] });

    const at = (f) => page.$eval(`[data-field="${f}"]`, (i) => [
        i.getAttribute("aria-invalid"),
        document.getElementById(i.getAttribute("aria-describedby")
                                .split(" ")[1]).textContent]);
    assert.deepEqual(await at("n"), ["true", "wrong type (type)"]);
    assert.deepEqual(await at("pos"), ["true",
                                       "/pos/1: wrong type (type)"]);
    assert.deepEqual(await at("tag"), ["true",
                                       "property \"tag\" missing "
                                       + "(required)"]);
    /* no field for /x/y: in the summary, as the server sent it */
    assert.equal(await textOf(page, "#publish-form .form-errors"),
                 "Refused: 400 schema doesn't match topics current "
                 + "schema\n/x~1y: no value is allowed (false)");
    assert.equal(await page.evaluate(
        () => document.activeElement.dataset.field), "n");
    await shot(page, "c2-refusal-at-fields");
    assert.deepEqual(await audit(page), []);

    /* accepted next time: the marks go */
    refusal = null;
    await fill(page, '[data-field="n"]', "2");
    await fill(page, '[data-field="tag"]', "t");
    await page.click('#publish-form button[value="publish"]');
    await waitText(page, "#publish-msg", (t) => t === "Published as "
                   + "revision 1.", "published");
    assert.deepEqual(lastPublish().data, { n: 2, tag: "t",
                                           pos: [1, "b"] });
    assert.equal(await page.$$eval("#publish-form [aria-invalid]",
                                   (l) => l.length), 0);
    await done(page);
});

test("as JSON text, a refusal's errors are at the text", async () => {
    refusal = { code: 400,
                message: "schema doesn't match topics current schema",
                errors: [{ instancePath: "/n", keyword: "type",
                           message: "wrong type" }] };
    const page = await openTyped();
    await page.click("#publish-form input[name=use-raw]");
    await page.waitForSelector("#publish-raw", { visible: true });
    await fill(page, "#publish-raw", '{"n": "x", "tag": "t"}');
    await page.click('#publish-form button[value="publish"]');
    await waitText(page, "#publish-raw-err",
                   (t) => t === "/n: wrong type (type)", "the error");
    assert.equal(await page.$eval("#publish-raw",
                                  (e) => e.getAttribute("aria-invalid")),
                 "true");
    assert.deepEqual(lastPublish().data, { n: "x", tag: "t" });
    refusal = null;
    await done(page);
});

test("the status document from its URL", async () => {
    broker.status = { version: "9.9.9", workers: 2, connections: 5,
                      redis: { address: "r:6379", reconnects: 3,
                               workers: [
                                   { pid: 11, redis_command: "up",
                                     redis_subscriber: "down",
                                     connections: 5 }] } };
    const page = await newPage(browser);
    await page.goto("http://127.0.0.1:" + broker.port
                    + "/console/?status=/status");
    await waitText(page, "#status-msg", /^Read at/, "the status");
    await waitFor(async () => (await textOf(page, "#status-out tbody"))
                  === "11updown5", "the worker row");
    assert.match(await textOf(page, "#status-out dl"), /Version9\.9\.9/);
    await done(page);
});

test("a broker without getSchema: the listTopics schema, no versions",
     async () => {
    /* an older broker: getSchema is an unknown action */
    const older = await new ScriptedBroker({
        listTopics: () => ({ data: [
            { name: "s/plain",
              schema: { version: 1, schema: { a: null, b: null, d: null } } },
        ] }),
        get: () => ({ data: null, rev: 0, epoch: "e1", ts: 0 }),
    }).start();
    try {
        const page = await newPage(browser);
        await page.goto("http://127.0.0.1:" + older.port + "/console/?url="
                        + encodeURIComponent(older.url) + "&status=/status");
        await page.waitForSelector("body[data-ready=true]");
        await page.click("input[name=kind][value=none]");
        await page.click("#connect-button");
        await page.waitForSelector('#topic-list [data-topic="s/plain"]');
        await page.click('#topic-list [data-topic="s/plain"]');
        await waitText(page, "#schema-degraded", /does not answer getSchema/,
                       "the note");
        assert.equal(await textOf(page, "#schema-version"), "1");
        assert.deepEqual(JSON.parse(await textOf(page, "#schema-out pre")),
                         { a: null, b: null, d: null });
        assert.equal(await page.$("#schema-versions"), null);
        /* the form still has the schema's fields */
        assert.deepEqual(await page.$$eval("#publish-form [data-field]",
            (l) => l.map((i) => i.dataset.field)), ["a", "b", "d"]);
        assert.ok(older.got.some((r) => r.action === "getSchema"));
        await shot(page, "c4-schema-without-getschema");
        await done(page);
    } finally {
        await older.stop();
    }
});
