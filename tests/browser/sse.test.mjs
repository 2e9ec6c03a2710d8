/*
 * Server-Sent Events in a real browser: Chromium's own EventSource
 * against the loom_http location (docs/http.md), reading the snapshot,
 * the live deliveries, coming back by itself with Last-Event-ID when the
 * stream ends (an nginx reload ends it) and resuming without a gap or a
 * repeat, and a resume from a position of another epoch told by resync.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connect } from "../../clients/js/dist/index.js";
import { launchBrowser, newPage, shot, waitFor } from "./harness.mjs";
import { startBroker } from "../../clients/js/test/broker.mjs";

let broker;
let browser;
let node;       /* the test's own client, connected again after a reload */

before(async () => {
    broker = await startBroker({
        workers: 2,
        server: "location /api/ { loom_http heartbeat=1s; }",
    });
    browser = await launchBrowser();
    node = await connect({ url: broker.url, timeoutMs: 5000 });
});

after(async () => {
    await node?.close();
    await browser?.close();
    const bad = broker ? await broker.stop() : [];
    assert.deepEqual(bad, []);
});

/* a page of the broker's origin with an EventSource on the path */
async function stream(path) {
    const page = await newPage(browser);
    await page.goto("http://127.0.0.1:" + broker.nginx.port + "/api/topics");
    await page.evaluate((path) => {
        const log = document.createElement("pre");
        document.body.replaceChildren(log);
        window.got = [];
        window.opens = 0;
        const es = new EventSource(path);
        window.es = es;
        const keep = (type) => (e) => {
            window.got.push({ type, id: e.lastEventId,
                              data: JSON.parse(e.data) });
            log.textContent += type + " " + e.lastEventId + " "
                + e.data + "\n";
        };
        es.onopen = () => { window.opens++; };
        es.onmessage = keep("message");
        es.addEventListener("snapshot", keep("snapshot"));
        es.addEventListener("resync", keep("resync"));
    }, path);
    return page;
}

/* a publish over HTTP: a request of its own, whichever worker takes it */
async function post(topic, data) {
    const r = await fetch("http://127.0.0.1:" + broker.nginx.port
                          + "/api/topics/" + topic,
                          { method: "POST", body: JSON.stringify(data) });
    const text = await r.text();
    assert.equal(r.status, 200, text);
    return JSON.parse(text).rev;
}

const got = (page) => page.evaluate(() => window.got);

async function until(page, what, pred) {
    await waitFor(async () => pred(await got(page)), what, 15000);
}

const revs = (events) => events.filter((e) => e.type === "message")
    .map((e) => e.data.rev);

test("snapshot, live, and a resume by Last-Event-ID after the stream "
     + "ends", async () => {
    await node.registerTopic("room", { text: null });
    await node.publish("room", { text: "one" });
    const top = await node.publish("room", { text: "two" });

    const page = await stream("/api/topics/room/events");
    await until(page, "the snapshot", (g) => g.length === 1);
    const [snap] = await got(page);
    assert.equal(snap.type, "snapshot");
    assert.deepEqual(snap.data.data, { text: "two" });
    assert.equal(snap.data.rev, top);
    const epoch = snap.data.epoch;
    assert.equal(snap.id, top + ":" + epoch);

    for (const text of ["three", "four", "five"]) {
        await node.publish("room", { text });
    }
    await until(page, "three live", (g) => revs(g).length === 3);
    const live = (await got(page)).slice(1);
    assert.deepEqual(live.map((e) => e.id),
                     [3, 4, 5].map((r) => r + ":" + epoch));
    assert.deepEqual(live.map((e) => e.data.data.text),
                     ["three", "four", "five"]);

    /* a reload ends every stream of the old workers; the browser comes
       back by itself with the last id it saw */
    process.kill(broker.nginx.master, "SIGHUP");
    for (const text of ["six", "seven"]) {
        await post("room", { text });
    }
    await waitFor(() => page.evaluate(() => window.opens >= 2),
                  "EventSource to reconnect", 20000);
    await post("room", { text: "eight" });
    await until(page, "eight", (g) => revs(g).includes(8));

    const all = await got(page);
    /* one snapshot (the resume has none), no resync, every revision
       once and in order */
    assert.deepEqual(all.map((e) => e.type).filter((t) => t !== "message"),
                     ["snapshot"]);
    assert.deepEqual(revs(all), [3, 4, 5, 6, 7, 8]);
    assert.deepEqual(all.slice(1).map((e) => e.data.data.text),
                     ["three", "four", "five", "six", "seven", "eight"]);
    await shot(page, "s1-event-stream-resumed");
    await page.evaluate(() => window.es.close());
    await page.done();
});

test("a position of another epoch is told by resync, then live",
     async () => {
    /* the reload above closed the client's connection to its worker */
    await node.close();
    node = await connect({ url: broker.url, timeoutMs: 5000 });
    await node.registerTopic("moved", { n: null });
    const top = await node.publish("moved", { n: 1 });
    const page = await stream("/api/topics/moved/events?lastEventId="
                              + encodeURIComponent("7:an-old-epoch"));
    await until(page, "the resync", (g) => g.length === 1);
    const [first] = await got(page);
    assert.equal(first.type, "resync");
    assert.equal(first.data.reason, "epoch");
    assert.deepEqual(first.data.data, { n: 1 });
    assert.equal(first.data.rev, top);
    assert.equal(first.id, top + ":" + first.data.epoch);

    await node.publish("moved", { n: 2 });
    await until(page, "the next revision", (g) => g.length === 2);
    const [, next] = await got(page);
    assert.equal(next.type, "message");
    assert.equal(next.data.rev, top + 1);
    await shot(page, "s2-event-stream-resync");
    await page.evaluate(() => window.es.close());
    await page.done();
});
