/* Every call of the client against a real broker, and its errors. */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { connect, DataLoomClient, DataLoomError } from "../dist/index.js";
import { startBroker, waitFor } from "./broker.mjs";

let broker;
const clients = [];

async function client(opts = {}) {
    const c = await connect({ url: broker.url, timeoutMs: 5000, ...opts });
    clients.push(c);
    return c;
}

async function rejects(promise, code, message, action) {
    const e = await promise.then(() => null, (err) => err);
    assert.ok(e instanceof DataLoomError, "a DataLoomError, got " + e);
    assert.equal(e.code, code);
    if (message !== undefined) {
        assert.equal(e.message, message);
    }
    if (action !== undefined) {
        assert.equal(e.action, action);
    }
    return e;
}

before(async () => {
    broker = await startBroker();
});

after(async () => {
    for (const c of clients) {
        await c.close();
    }
    assert.deepEqual(await broker.stop(), []);
});

describe("topics", () => {
    test("register, list, update, unregister", async () => {
        const c = await client();
        await c.registerTopic("t.life", { a: null, b: { c: null } });
        /* the same schema again is a success */
        await c.registerTopic("t.life", { a: 1, b: { c: 2 } });

        let list = await c.listTopics();
        let t = list.find((x) => x.name === "t.life");
        assert.deepEqual(t.schema, { version: 0,
                                     schema: { a: null, b: { c: null } } });

        await c.updateSchema("t.life", { a: null, b: null, d: null });
        list = await c.listTopics();
        t = list.find((x) => x.name === "t.life");
        assert.equal(t.schema.version, 1);
        assert.deepEqual(t.schema.schema, { a: null, b: null, d: null });

        await c.unregisterTopic("t.life");
        list = await c.listTopics();
        assert.equal(list.find((x) => x.name === "t.life"), undefined);
    });

    test("errors of topic calls are DataLoomErrors", async () => {
        const c = await client();
        await c.registerTopic("t.err", { a: null });
        const e = await rejects(c.registerTopic("t.err", { b: null }), 500,
            "cannot register topic, topic already exists with different "
            + "schema. Try updating schema", "registerTopic");
        assert.ok(/^\d+$/.test(e.id), "the request id: " + e.id);
        assert.equal(e.fromServer, true);
        await rejects(c.updateSchema("t.nope", { a: null }), 500,
            "cannot update schema for topic t.nope. Topic doesn't exist",
            "updateSchema");
        await rejects(c.unregisterTopic("t.nope"), 500,
            "cannot unregister topic. topic doesn't exist with name: t.nope",
            "unregisterTopic");
        await rejects(c.registerTopic("", { a: null }), 400,
            "no topic provided", "registerTopic");
        /* the connection carries on */
        await c.unregisterTopic("t.err");
    });

    test("listTopics follows the server's pages", async () => {
        /*
         * Through the standard WebSocket interface (the one browsers
         * have), with ws behind it so the frames sent can be counted.
         */
        const frames = [];
        class Counting extends WebSocket {
            send(data, ...rest) {
                frames.push(JSON.parse(data));
                return super.send(data, ...rest);
            }
        }
        const c = await client({ WebSocket: Counting, protocols: [] });
        const n = 1100;
        const names = [];
        for (let i = 0; i < n; i++) {
            names.push("page." + String(i).padStart(5, "0"));
        }
        await Promise.all(names.map((t) => c.registerTopic(t, { v: null })));
        const list = await c.listTopics();
        const got = new Set(list.map((t) => t.name)
                                .filter((x) => x.startsWith("page.")));
        assert.equal(got.size, n);
        const asks = frames.filter((f) => f.action === "listTopics");
        assert.ok(asks.length >= 2, "pages asked for: " + asks.length);
        assert.equal(asks[0].data, undefined);
        for (const a of asks.slice(1)) {
            assert.match(a.data.cursor, /^[0-9]+$/);
        }
        await Promise.all(names.map((t) => c.unregisterTopic(t)));
    });
});

describe("values", () => {
    test("publish, get, sendWithoutSave", async () => {
        const c = await client();
        await c.registerTopic("v.room", { text: null });
        assert.deepEqual(await c.get("v.room"), c.v2
            ? { data: null, rev: 0, epoch: (await c.get("v.room")).epoch,
                ts: 0 }
            : { data: null });
        const rev = await c.publish("v.room", { text: "hi" });
        assert.equal(rev, c.v2 ? 1 : undefined);
        assert.deepEqual((await c.get("v.room")).data, { text: "hi" });
        await c.sendWithoutSave("v.room", { text: "typing" });
        /* not stored */
        assert.deepEqual((await c.get("v.room")).data, { text: "hi" });
        await c.unregisterTopic("v.room");
    });

    test("errors of publish and get", async () => {
        const c = await client();
        await rejects(c.publish("v.none", { a: 1 }), 400,
            "could not get topic by name: v.none", "publish");
        await rejects(c.sendWithoutSave("v.none", { a: 1 }), 400,
            "could not get topic by name: v.none", "sendWithoutSave");
        await rejects(c.get("v.none"), 500,
            "couldn't get value for topic. topic doesn't exist. topic: v.none",
            "get");
        await c.registerTopic("v.strict", { a: null });
        await rejects(c.publish("v.strict", { b: 1 }), 400,
            "schema doesn't match topics current schema", "publish");
        await rejects(c.publish("v.strict", [1]), 400,
            "json: cannot unmarshal array into Go value of type "
            + "map[string]interface {}", "publish");
        await c.unregisterTopic("v.strict");
    });
});

describe("subscriptions", () => {
    test("subscribe, deliveries, unsubscribe", async () => {
        const pub = await client({ clientId: "sub-publisher" });
        const sub = await client();
        await pub.registerTopic("s.chat", { m: null });
        await pub.publish("s.chat", { m: "before" });

        const got = [];
        const s = await sub.subscribe("s.chat", (d) => got.push(d),
                                      { snapshot: true });
        assert.equal(s.topic, "s.chat");
        assert.deepEqual(s.snapshot.data, { m: "before" });

        await pub.publish("s.chat", { m: 1 });
        await pub.sendWithoutSave("s.chat", { m: 2 });
        await waitFor(() => got.length === 2, "two deliveries");
        assert.deepEqual(got.map((d) => [d.action, d.data, d.senderId]), [
            ["publish", { m: 1 }, "sub-publisher"],
            ["sendWithoutSave", { m: 2 }, "sub-publisher"],
        ]);

        await s.unsubscribe();
        await pub.publish("s.chat", { m: 3 });
        /* answers are in order: a get after the publish is answered after
           any delivery the unsubscribed client could still have got */
        await sub.get("s.chat");
        await pub.get("s.chat");
        assert.equal(got.length, 2);

        await rejects(sub.unsubscribe("s.chat"), 500, undefined,
                      "unsubscribe");
        await pub.unregisterTopic("s.chat");
    });

    test("own deliveries and several handlers", async () => {
        const c = await client({ clientId: "self" });
        await c.registerTopic("s.self", { n: null });
        const a = [];
        const b = [];
        const sa = await c.subscribe("s.self", (d) => a.push(d.data.n));
        await c.subscribe("s.self", (d) => b.push(d.data.n));
        await c.publish("s.self", { n: 1 });
        /* a subscribed publisher has its delivery before the answer */
        assert.deepEqual(a, [1]);
        assert.deepEqual(b, [1]);
        await sa.unsubscribe();
        await c.publish("s.self", { n: 2 });
        assert.deepEqual(a, [1]);
        assert.deepEqual(b, [1, 2]);
        await c.unregisterTopic("s.self");
    });

    test("subscribing to a missing topic", async () => {
        const c = await client();
        await rejects(c.subscribe("s.missing", () => {}), 500,
            "topic doesn't exist for s.missing", "subscribe");
    });
});

describe("connections", () => {
    test("a taken ClientId is refused with its status", async () => {
        await client({ clientId: "twice" });
        const e = await rejects(connect({ url: broker.url,
                                          clientId: "twice" }),
                                "connect_failed");
        assert.equal(e.status, 409);
        assert.match(e.message, /409 client ID already exists/);
    });

    test("states and close", async () => {
        const c = new DataLoomClient({ url: broker.url });
        const states = [];
        c.on("state", (s) => states.push(s));
        await c.open();
        assert.equal(c.state, "open");
        await c.registerTopic("c.close", { a: null });
        const pending = c.get("c.close").then(() => null, (e) => e);
        await c.close();
        assert.deepEqual(states, ["open", "closed"]);
        /* a request not answered before close() may be rejected */
        const pe = await pending;
        if (pe !== null) {
            assert.equal(pe.code, "closed");
        }
        await rejects(c.get("c.close"), "closed");
        const d = await client();
        await d.unregisterTopic("c.close");
    });

    test("a connection refused outright", async () => {
        const e = await rejects(connect({ url: "ws://127.0.0.1:1/ws",
                                          reconnect: false }),
                                "connect_failed");
        assert.match(e.message, /ECONNREFUSED/);
    });
});

describe("api keys", () => {
    let keyed;

    before(async () => {
        keyed = await broker.addNode({ location: "loom_api_key k1 k2;" });
    });

    test("the right key is let in, a wrong one gets 401", async () => {
        const c = await connect({ url: keyed.url, apiKey: "k2" });
        clients.push(c);
        assert.ok(Array.isArray(await c.listTopics()));
        const e = await rejects(connect({ url: keyed.url, apiKey: "k3" }),
                                "connect_failed");
        assert.equal(e.status, 401);
        const f = await rejects(connect({ url: keyed.url }),
                                "connect_failed");
        assert.equal(f.status, 401);
    });

    test("the key as a subprotocol entry or in the query, as browsers send it",
         async () => {
        for (const where of ["protocol", "query"]) {
            const c = await connect({ url: keyed.url, apiKey: "k1",
                                      credentialIn: where });
            clients.push(c);
            assert.ok(Array.isArray(await c.listTopics()), where);
            /* the token entry is never the accepted subprotocol */
            assert.ok(c.protocol === "" || c.protocol === "dataloom.v2");
            const e = await rejects(connect({ url: keyed.url, apiKey: "k9",
                                              credentialIn: where }),
                                    "connect_failed");
            assert.equal(e.status, 401, where);
        }
    });
});
