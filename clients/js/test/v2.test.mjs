/*
 * dataloom.v2 against the real broker: publish revisions, positions of
 * get and snapshots, history.  Skipped, with the reason printed, while the
 * broker does not accept the subprotocol.  Also: the flow-control bound
 * with many requests at once, which needs no v2.
 */

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { connect, DataLoomError } from "../dist/index.js";
import { speaksV2, startBroker, V2_SKIP } from "./broker.mjs";

const broker = await startBroker();
const v2 = await speaksV2(broker.url, connect);
if (!v2) {
    console.log("# v2 tests skipped: " + V2_SKIP);
}
const skip = v2 ? false : V2_SKIP;
const clients = [];

async function client(opts = {}) {
    const c = await connect({ url: broker.url, timeoutMs: 10000, ...opts });
    clients.push(c);
    return c;
}

after(async () => {
    for (const c of clients) {
        await c.close();
    }
    assert.deepEqual(await broker.stop(), []);
});

test("many requests at once stay within maxInFlight", async () => {
    const c = await client({ maxInFlight: 16, maxQueued: 2000 });
    await c.registerTopic("fc.t", { i: null });
    let most = 0;
    const got = [];
    await c.subscribe("fc.t", (d) => got.push(d.data.i));
    const all = [];
    for (let i = 0; i < 1500; i++) {
        all.push(c.publish("fc.t", { i }));
        most = Math.max(most, c.inFlight);
    }
    const sampler = setInterval(() => {
        most = Math.max(most, c.inFlight);
    }, 1);
    await Promise.all(all);
    clearInterval(sampler);
    assert.ok(most <= 16, "at most 16 in flight, saw " + most);
    assert.equal(most, 16);
    /* every publish delivered, in order */
    assert.equal(got.length, 1500);
    assert.deepEqual(got, [...Array(1500).keys()]);
    /* past the bound of the queue: refused at once */
    const over = [];
    for (let i = 0; i < 2100; i++) {
        over.push(c.publish("fc.t", { i }).then(() => "ok",
            (e) => e instanceof DataLoomError ? e.code : String(e)));
    }
    const codes = await Promise.all(over);
    assert.equal(codes.filter((x) => x === "ok").length, 2016);
    assert.equal(codes.filter((x) => x === "queue_full").length, 84);
    await c.unregisterTopic("fc.t");
});

test("v2: publish resolves with the stored revision", { skip }, async () => {
    const c = await client();
    await c.registerTopic("v2.rev", { n: null });
    assert.equal(await c.publish("v2.rev", { n: 1 }), 1);
    assert.equal(await c.publish("v2.rev", { n: 2 }), 2);
    await c.sendWithoutSave("v2.rev", { n: 3 });
    assert.equal(await c.publish("v2.rev", { n: 4 }), 3);
    const v = await c.get("v2.rev");
    assert.deepEqual(v.data, { n: 4 });
    assert.equal(v.rev, 3);
    assert.equal(typeof v.epoch, "string");
    assert.equal(typeof v.ts, "number");
});

test("v2: snapshot and deliveries with revisions", { skip }, async () => {
    const c = await client();
    await c.registerTopic("v2.snap", { n: null });
    await c.publish("v2.snap", { n: 1 });
    const got = [];
    const s = await c.subscribe("v2.snap", (d) => got.push([d.rev, d.data]),
                                { snapshot: true });
    assert.deepEqual(s.snapshot.data, { n: 1 });
    assert.equal(s.snapshot.rev, 1);
    await c.publish("v2.snap", { n: 2 });
    assert.deepEqual(got, [[2, { n: 2 }]]);
});

test("v2: history pages", { skip }, async () => {
    const c = await client();
    await c.registerTopic("v2.hist", { n: null });
    for (let i = 1; i <= 5; i++) {
        await c.publish("v2.hist", { n: i });
    }
    const p1 = await c.history("v2.hist", { limit: 2 });
    assert.deepEqual(p1.entries.map((e) => e.rev), [1, 2]);
    assert.equal(p1.rev, 5);
    const p2 = await c.history("v2.hist", { since: 2, limit: 2 });
    assert.deepEqual(p2.entries.map((e) => e.data), [{ n: 3 }, { n: 4 }]);
    const back = await c.history("v2.hist", { reverse: true, limit: 1 });
    assert.deepEqual(back.entries.map((e) => e.rev), [5]);
    const e = await c.history("v2.none").then(() => null, (x) => x);
    assert.ok(e instanceof DataLoomError);
    assert.equal(e.code, 500);
});
