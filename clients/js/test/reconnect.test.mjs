/*
 * Reconnect after the broker restarts: nginx is killed and started again
 * on the same port; the client reconnects, resubscribes, and deliveries
 * flow again.  With dataloom.v2 it resumes from its last revision.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connect } from "../dist/index.js";
import { speaksV2, startBroker, V2_SKIP, waitFor } from "./broker.mjs";

let broker;
const clients = [];

async function client(url, opts = {}) {
    const c = await connect({ url, timeoutMs: 5000,
                              reconnect: { initialDelayMs: 50,
                                           maxDelayMs: 400 }, ...opts });
    clients.push(c);
    return c;
}

broker = await startBroker();
const v2 = await speaksV2(broker.url, connect);
if (!v2) {
    console.log("# v2 reconnect tests skipped: " + V2_SKIP);
}

after(async () => {
    for (const c of clients) {
        await c.close();
    }
    assert.deepEqual(await broker.stop(), []);
});

test("reconnects, resubscribes, and deliveries flow again", async () => {
    const sub = await client(broker.url, { clientId: "rc-sub" });
    const states = [];
    const recoveries = [];
    sub.on("state", (s) => states.push(s));
    sub.on("recovery", (r) => recoveries.push(r));
    await sub.registerTopic("rc.a", { n: null });
    await sub.registerTopic("rc.b", { n: null });
    const got = [];
    await sub.subscribe("rc.a", (d) => got.push(["a", d.data.n]));
    await sub.subscribe("rc.b", (d) => got.push(["b", d.data.n]));

    await broker.nginx.kill();
    await waitFor(() => sub.state === "reconnecting", "reconnecting");
    /* a request made while down waits for the connection */
    const waiting = sub.get("rc.a");
    await broker.nginx.start();
    await waitFor(() => recoveries.length === 2, "both resubscribed", 15000);
    assert.equal(sub.state, "open");
    assert.deepEqual((await waiting).data, null);
    assert.deepEqual(states.slice(0, 2), ["reconnecting", "open"]);
    assert.deepEqual(recoveries.map((r) => r.topic).sort(), ["rc.a", "rc.b"]);
    for (const r of recoveries) {
        assert.equal(r.reason, "reconnect");
        if (!v2) {
            /* v1 cannot tell what was missed */
            assert.equal(r.recovered, false);
        }
    }

    const pub = await client(broker.url, { clientId: "rc-pub" });
    await pub.publish("rc.a", { n: 1 });
    await pub.publish("rc.b", { n: 2 });
    await waitFor(() => got.length === 2, "deliveries after the restart");
    assert.deepEqual(got, [["a", 1], ["b", 2]]);
    /* the same ClientId was taken again */
    await waitFor(() => pub.get("rc.a"), "a get");
});

test("a resubscribe that meets a Redis outage is tried again", async () => {
    const sub = await client(broker.url, { clientId: "rc-outage" });
    const recoveries = [];
    const errors = [];
    sub.on("recovery", (r) => recoveries.push(r));
    sub.on("error", (e) => errors.push(e));
    await sub.registerTopic("rc.out", { n: null });
    const got = [];
    await sub.subscribe("rc.out", (d) => got.push(d.data.n));

    /* the broker comes back while its Redis answers nothing */
    broker.redis.kill("SIGSTOP");
    try {
        await broker.nginx.kill();
        await waitFor(() => sub.state === "reconnecting", "reconnecting");
        await broker.nginx.start({ waitRedis: false });
        await waitFor(() => errors.some((e) => e.message.startsWith(
            "storage unavailable")), "the resubscribe refused", 15000);
        assert.equal(recoveries.length, 0);
    } finally {
        broker.redis.kill("SIGCONT");
    }

    /* the subscription was kept and is made again once Redis answers */
    await waitFor(() => recoveries.length === 1, "resubscribed", 15000);
    const pub = await client(broker.url);
    await pub.publish("rc.out", { n: 7 });
    await waitFor(() => got.includes(7), "the delivery");
});


test("a subscription's own recovery callback", async () => {
    const c = await client(broker.url);
    await c.registerTopic("rc.cb", { n: null });
    const seen = [];
    await c.subscribe("rc.cb", () => {}, { onRecovery: (r) => seen.push(r) });
    await broker.nginx.kill();
    await broker.nginx.start();
    await waitFor(() => seen.length === 1, "the recovery callback", 15000);
    assert.equal(seen[0].topic, "rc.cb");
    assert.equal(typeof seen[0].recovered, "boolean");
});

test("gives up after maxAttempts", async () => {
    const c = await connect({ url: broker.url,
                              reconnect: { initialDelayMs: 10,
                                           maxDelayMs: 20, maxAttempts: 3 } });
    const errors = [];
    c.on("error", (e) => errors.push(e));
    await broker.nginx.kill();
    await waitFor(() => c.state === "closed", "closed", 10000);
    assert.equal(errors.length, 3);
    assert.equal(errors[0].code, "connect_failed");
    await broker.nginx.start();
});

test("v2: resumes from (epoch, rev) and replays what was missed",
     { skip: v2 ? false : V2_SKIP }, async () => {
    const other = await broker.addNode();
    const sub = await client(broker.url);
    const pub = await client(other.url);
    await pub.registerTopic("rc.v2", { n: null });
    await pub.publish("rc.v2", { n: 1 });
    const got = [];
    const rec = [];
    await sub.subscribe("rc.v2", (d) => got.push([d.rev, d.data.n]),
                        { onRecovery: (r) => rec.push(r) });
    await pub.publish("rc.v2", { n: 2 });
    await waitFor(() => got.length === 1, "a live delivery");

    /* the subscriber's node goes down; the other one takes publishes */
    await broker.nginx.kill();
    await pub.publish("rc.v2", { n: 3 });
    await pub.publish("rc.v2", { n: 4 });
    await broker.nginx.start();
    await waitFor(() => rec.length === 1, "the resume", 15000);
    assert.equal(rec[0].recovered, true);
    assert.equal(rec[0].replayed, 2);
    await waitFor(() => got.length === 3, "the replay");
    await pub.publish("rc.v2", { n: 5 });
    await waitFor(() => got.length === 4, "live again");
    assert.deepEqual(got, [[2, 2], [3, 3], [4, 4], [5, 5]]);
});

test("v2: a new epoch means recovered: false with the new state",
     { skip: v2 ? false : V2_SKIP }, async () => {
    const other = broker.nodes[1] ?? await broker.addNode();
    const sub = await client(broker.url);
    const pub = await client(other.url);
    await pub.registerTopic("rc.epoch", { n: null });
    await pub.publish("rc.epoch", { n: 1 });
    const rec = [];
    const s = await sub.subscribe("rc.epoch", () => {},
        { snapshot: true, onRecovery: (r) => rec.push(r) });
    const before = s.snapshot.epoch;
    await broker.nginx.kill();
    await pub.unregisterTopic("rc.epoch");
    await pub.registerTopic("rc.epoch", { n: null });
    await pub.publish("rc.epoch", { n: 9 });
    await broker.nginx.start();
    await waitFor(() => rec.length >= 1, "the resubscription", 15000);
    const r = rec[rec.length - 1];
    assert.equal(r.recovered, false);
    assert.notEqual(r.epoch, before);
    assert.equal(r.rev, 1);
    assert.deepEqual(r.value.data, { n: 9 });
});
