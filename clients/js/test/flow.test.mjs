/*
 * Timeouts, flow control and answer matching, against a WebSocket server
 * of the test's own that answers only when told to.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WebSocketServer } from "ws";
import { connect, DataLoomError } from "../dist/index.js";
import { waitFor } from "./broker.mjs";

let server;
let url;
let peers = [];
/* the subprotocol the server picks: none, as a server without v2 */
let choose = () => false;

before(async () => {
    server = new WebSocketServer({
        host: "127.0.0.1", port: 0,
        handleProtocols: (offered) => choose(offered),
    });
    await new Promise((r) => server.once("listening", r));
    url = "ws://127.0.0.1:" + server.address().port + "/ws";
    server.on("connection", (ws, req) => {
        const peer = { ws, req, got: [] };
        ws.on("message", (m) => peer.got.push(JSON.parse(m.toString())));
        peers.push(peer);
    });
});

after(async () => {
    for (const c of server.clients) {
        c.terminate();
    }
    await new Promise((r) => server.close(r));
});

function answer(peer, req, extra = {}) {
    peer.ws.send(JSON.stringify({ id: req.id, action: req.action, code: 200,
                                  ...extra, type: "response" }) + "\n");
}

async function fresh(opts = {}) {
    peers = [];
    const c = await connect({ url, reconnect: false, ...opts });
    await waitFor(() => peers.length === 1, "the connection");
    return { c, peer: peers[0] };
}

test("every request has a timeout", async () => {
    const { c, peer } = await fresh({ timeoutMs: 200 });
    const t0 = Date.now();
    const e = await c.get("quiet").then(() => null, (x) => x);
    assert.ok(e instanceof DataLoomError);
    assert.equal(e.code, "timeout");
    assert.equal(e.action, "get");
    assert.equal(e.fromServer, false);
    assert.ok(Date.now() - t0 >= 190, "not before the timeout");
    /* the request was sent with an id and requireAck */
    assert.equal(peer.got.length, 1);
    assert.deepEqual(peer.got[0], { id: e.id, action: "get",
                                    topic: "quiet", requireAck: true });
    await c.close();
});

test("answers are matched in order; a late answer keeps the order",
     async () => {
    const { c, peer } = await fresh({ timeoutMs: 300 });
    const late = c.get("a").then(() => "answered", (e) => e.code);
    await waitFor(() => peer.got.length === 1, "the first request");
    assert.equal(await late, "timeout");
    const p2 = c.publish("b", { x: 1 });
    const p3 = c.get("c");
    await waitFor(() => peer.got.length === 3, "three requests");
    /* the timed-out request is still in flight until its answer */
    assert.equal(c.inFlight, 3);
    answer(peer, peer.got[0], { data: 1 });
    answer(peer, peer.got[1], { rev: 7 });
    answer(peer, peer.got[2], { data: { v: 3 } });
    assert.equal(await p2, 7);
    assert.deepEqual(await p3, { data: { v: 3 } });
    assert.equal(c.inFlight, 0);
    await c.close();
});

test("server errors carry code, message, action and id", async () => {
    const { c, peer } = await fresh();
    const p = c.unsubscribe("x").then(() => null, (e) => e);
    await waitFor(() => peer.got.length === 1, "the request");
    peer.ws.send(JSON.stringify({ id: peer.got[0].id, action: "unsubscribe",
        code: 500, message: "no", type: "response" }));
    const e = await p;
    assert.ok(e instanceof DataLoomError);
    assert.deepEqual([e.code, e.message, e.action, e.id],
                     [500, "no", "unsubscribe", peer.got[0].id]);
    await c.close();
});

test("a refused publish carries the server's errors; an update its "
     + "differences", async () => {
    const { c, peer } = await fresh();
    const p = c.publish("t", { a: "x" }).then(() => null, (e) => e);
    const u = c.updateSchema("t", { type: "object" },
                             { schemaType: "json-schema",
                               compatibility: "backward" })
        .then(() => null, (e) => e);
    const k = c.publish("k", { b: 1 }).then(() => null, (e) => e);
    await waitFor(() => peer.got.length === 3, "the requests");
    assert.equal(peer.got[1].schemaType, "json-schema");
    assert.equal(peer.got[1].compatibility, "backward");
    const errors = [{ instancePath: "/a", keyword: "type",
                      message: "wrong type" }];
    const differences = [{ path: "/properties/a", reason: "removed" }];
    peer.ws.send(JSON.stringify({ id: peer.got[0].id, action: "publish",
        code: 400, message: "schema doesn't match topics current schema",
        errors, type: "response" }));
    peer.ws.send(JSON.stringify({ id: peer.got[1].id,
        action: "updateSchema", code: 409,
        message: "schema change is not backward compatible", differences,
        type: "response" }));
    peer.ws.send(JSON.stringify({ id: peer.got[2].id, action: "publish",
        code: 400, message: "schema doesn't match topics current schema",
        type: "response" }));
    const e = await p;
    assert.equal(e.code, 400);
    assert.deepEqual(e.errors, errors);
    const f = await u;
    assert.equal(f.code, 409);
    assert.deepEqual(f.differences, differences);
    /* a key-set refusal has neither */
    const g = await k;
    assert.equal(g.errors, undefined);
    assert.equal(g.differences, undefined);
    await c.close();
});

test("getSchema asks for the current or a named version", async () => {
    const { c, peer } = await fresh();
    const cur = c.getSchema("t");
    const old = c.getSchema("t", 1);
    await waitFor(() => peer.got.length === 2, "the requests");
    assert.deepEqual(peer.got[0], { id: peer.got[0].id, action: "getSchema",
                                    topic: "t", requireAck: true });
    assert.deepEqual(peer.got[1], { id: peer.got[1].id, action: "getSchema",
                                    topic: "t", version: 1,
                                    requireAck: true });
    answer(peer, peer.got[0], { data: { type: "object" }, version: 2,
                                versions: [0, 1, 2],
                                schemaType: "json-schema",
                                compatibility: "backward" });
    answer(peer, peer.got[1], { data: { a: null }, version: 1,
                                versions: [0, 1, 2], schemaType: "keys",
                                compatibility: "none" });
    assert.deepEqual(await cur, { schema: { type: "object" }, version: 2,
                                  versions: [0, 1, 2],
                                  schemaType: "json-schema",
                                  compatibility: "backward" });
    assert.deepEqual(await old, { schema: { a: null }, version: 1,
                                  versions: [0, 1, 2], schemaType: "keys",
                                  compatibility: "none" });
    await c.close();
});

test("no more than maxInFlight requests are sent; the rest wait, bounded",
     async () => {
    const { c, peer } = await fresh({ maxInFlight: 4, maxQueued: 3,
                                      timeoutMs: 5000 });
    const results = [];
    for (let i = 0; i < 7; i++) {
        results.push(c.publish("t", { i }).then((r) => r, (e) => e));
    }
    /* past the queue: refused at once, with a clear error */
    const over = await c.publish("t", { i: 7 }).then(() => null, (e) => e);
    assert.ok(over instanceof DataLoomError);
    assert.equal(over.code, "queue_full");
    assert.match(over.message, /4 in flight and 3 queued/);

    await waitFor(() => peer.got.length === 4, "four requests");
    /* give the client every chance to send more than it may */
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(peer.got.length, 4);
    assert.equal(c.inFlight, 4);
    assert.equal(c.queued, 3);

    /* each answer frees one slot */
    answer(peer, peer.got[0], { rev: 1 });
    await waitFor(() => peer.got.length === 5, "a fifth request");
    assert.equal(c.inFlight, 4);
    assert.equal(c.queued, 2);
    for (let i = 1; i < 7; i++) {
        await waitFor(() => peer.got.length > i, "request " + i);
        answer(peer, peer.got[i], { rev: i + 1 });
    }
    assert.deepEqual(await Promise.all(results), [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(peer.got.map((r) => r.data.i), [0, 1, 2, 3, 4, 5, 6]);
    await c.close();
});

test("a waiting request times out in the queue and is never sent",
     async () => {
    const { c, peer } = await fresh({ maxInFlight: 1, timeoutMs: 200 });
    const a = c.get("a").then(() => null, (e) => e.code);
    const b = c.get("b").then(() => null, (e) => e.code);
    assert.deepEqual(await Promise.all([a, b]), ["timeout", "timeout"]);
    answer(peer, peer.got[0], { data: null });
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(peer.got.map((r) => r.topic), ["a"]);
    await c.close();
});

test("a broken connection rejects what is in flight", async () => {
    const { c, peer } = await fresh({ timeoutMs: 5000 });
    const p = c.get("x").then(() => null, (e) => e);
    await waitFor(() => peer.got.length === 1, "the request");
    peer.ws.terminate();
    const e = await p;
    assert.equal(e.code, "disconnected");
    await waitFor(() => c.state === "closed", "closed (no reconnect)");
});

test("credentials and ClientId as headers, v2 offered", async () => {
    const { c, peer } = await fresh({ apiKey: "k1", clientId: "me" });
    assert.equal(peer.req.headers.authorization, "Bearer k1");
    assert.equal(peer.req.headers.clientid, "me");
    assert.equal(peer.req.headers["sec-websocket-protocol"], "dataloom.v2");
    /* this server chose no subprotocol: a v1 connection */
    assert.equal(c.v2, false);
    await c.close();
    choose = (offered) => offered.has("dataloom.v2") && "dataloom.v2";
    const v = await fresh({ token: "t.k", credentialIn: "protocol" });
    assert.equal(v.peer.req.headers["sec-websocket-protocol"],
                 "dataloom.v2, dataloom.token.t.k");
    assert.equal(v.c.v2, true);
    assert.equal(v.c.protocol, "dataloom.v2");
    await v.c.close();
    choose = () => false;
    const d = await fresh({ token: "t.k", credentialIn: "protocol",
                            protocols: [] });
    assert.equal(d.peer.req.headers.authorization, undefined);
    assert.equal(d.peer.req.headers["sec-websocket-protocol"],
                 "dataloom.token.t.k");
    await d.c.close();
    const q = await fresh({ token: "a b", credentialIn: "query" });
    assert.equal(q.peer.req.url, "/ws?access_token=a%20b");
    await q.c.close();
});

test("refreshToken: the new token is sent, and used to reconnect",
     async () => {
    peers = [];
    const c = await connect({ url, token: "old", credentialIn: "query",
                              reconnect: { initialDelayMs: 10,
                                           maxDelayMs: 20 } });
    await waitFor(() => peers.length === 1, "the connection");
    const p = c.refreshToken("new");
    await waitFor(() => peers[0].got.length === 1, "the request");
    const req = peers[0].got[0];
    assert.deepEqual(req, { id: req.id, action: "refreshToken",
                            data: { token: "new" }, requireAck: true });
    answer(peers[0], req);
    await p;
    assert.equal(peers[0].req.url, "/ws?access_token=old");
    peers[0].ws.terminate();
    await waitFor(() => peers.length === 2, "the reconnect");
    assert.equal(peers[1].req.url, "/ws?access_token=new");
    await c.close();
});

test("a refused refreshToken keeps the old token", async () => {
    peers = [];
    const c = await connect({ url, token: "old", credentialIn: "query",
                              reconnect: false });
    await waitFor(() => peers.length === 1, "the connection");
    const p = c.refreshToken("bad").then(() => null, (e) => e);
    await waitFor(() => peers[0].got.length === 1, "the request");
    peers[0].ws.send(JSON.stringify({ id: peers[0].got[0].id,
        action: "refreshToken", code: 401,
        message: "unauthorized: token expired", type: "response" }));
    const e = await p;
    assert.ok(e instanceof DataLoomError);
    assert.deepEqual([e.code, e.message], [401,
                                           "unauthorized: token expired"]);
    await c.close();
});
