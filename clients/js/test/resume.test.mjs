/*
 * The client's side of dataloom.v2 against a scripted server that speaks
 * it as docs/protocol.md section 15 says: publish revisions, positions of
 * get, history pages, resume with `since`, resync events.  (The same
 * features against the real broker are in reconnect.test.mjs and
 * v2.test.mjs, which run once the broker offers dataloom.v2.)
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { WebSocketServer } from "ws";
import { connect, DataLoomError } from "../dist/index.js";
import { waitFor } from "./broker.mjs";

let server;
let url;
let peers = [];
let script = () => {};

before(async () => {
    server = new WebSocketServer({
        host: "127.0.0.1", port: 0,
        handleProtocols: (offered) => offered.has("dataloom.v2")
            && "dataloom.v2",
    });
    await new Promise((r) => server.once("listening", r));
    url = "ws://127.0.0.1:" + server.address().port + "/ws";
    server.on("connection", (ws) => {
        const peer = { ws, got: [] };
        peers.push(peer);
        ws.on("message", (m) => {
            const msg = JSON.parse(m.toString());
            peer.got.push(msg);
            script(peer, msg);
        });
    });
});

after(async () => {
    for (const c of server.clients) {
        c.terminate();
    }
    await new Promise((r) => server.close(r));
});

function send(peer, obj) {
    peer.ws.send(JSON.stringify(obj) + "\n");
}

function answer(peer, req, extra = {}) {
    send(peer, { id: req.id, action: req.action, code: 200, ...extra,
                 type: "response" });
}

function delivery(peer, topic, rev, n) {
    send(peer, { id: "p", action: "publish", topic, data: { n },
                 senderId: "x", rev, ts: 1000 + rev });
}

test("publish, get and history carry revisions", async () => {
    script = (peer, m) => {
        if (m.action === "publish") {
            answer(peer, m, { rev: 42 });
        } else if (m.action === "get") {
            answer(peer, m, { data: { n: 1 }, rev: 42, epoch: "E", ts: 9 });
        } else if (m.action === "history") {
            answer(peer, m, { data: [{ rev: 41, ts: 8, data: { n: 0 },
                                       senderId: "s" }],
                              epoch: "E", rev: 42 });
        }
    };
    peers = [];
    const c = await connect({ url, reconnect: false });
    assert.equal(c.v2, true);
    assert.equal(await c.publish("t", { n: 1 }), 42);
    assert.deepEqual(await c.get("t"),
                     { data: { n: 1 }, rev: 42, epoch: "E", ts: 9 });
    const h = await c.history("t", { since: 40, limit: 1 });
    assert.deepEqual(h, { entries: [{ rev: 41, ts: 8, data: { n: 0 },
                                      senderId: "s" }],
                          epoch: "E", rev: 42 });
    assert.deepEqual(peers[0].got[2], { id: peers[0].got[2].id,
        action: "history", topic: "t", since: 40, limit: 1,
        requireAck: true });
    await c.close();
});

test("history needs v2", async () => {
    peers = [];
    const c = await connect({ url, reconnect: false, protocols: [] });
    assert.equal(c.v2, false);
    const e = await c.history("t").then(() => null, (x) => x);
    assert.ok(e instanceof DataLoomError);
    assert.equal(e.code, "unsupported");
    await c.close();
});

test("resume: recovered, replayed, duplicates dropped; then a new epoch",
     async () => {
    let resume = null;
    script = (peer, m) => {
        if (m.action !== "subscribe") {
            return;
        }
        if (m.since === undefined) {
            /* first subscription: a snapshot at rev 5 */
            answer(peer, m, { data: { n: 5 }, rev: 5, epoch: "E", ts: 5 });
            delivery(peer, "room", 6, 6);
        } else {
            resume = m;
            peer.onResume(m);
        }
    };
    peers = [];
    const c = await connect({ url, reconnect: { initialDelayMs: 20,
                                                maxDelayMs: 40 } });
    const got = [];
    const rec = [];
    const s = await c.subscribe("room", (d) => got.push(d.rev),
        { snapshot: true, onRecovery: (r) => rec.push(r) });
    assert.deepEqual(s.snapshot, { data: { n: 5 }, rev: 5, epoch: "E",
                                   ts: 5 });
    assert.equal(peers[0].got[0].snapshot, true);
    await waitFor(() => got.length === 1, "rev 6");

    /* the connection breaks; the next one resumes from (E, 6) */
    server.once("connection", (ws) => {
        const peer = peers[peers.length - 1];
        peer.onResume = (m) => {
            answer(peer, m, { data: { n: 7 }, rev: 7, epoch: "E", ts: 7,
                              recovered: true, replayed: 1 });
            delivery(peer, "room", 7, 7);
            /* a revision already applied is not applied twice */
            delivery(peer, "room", 7, 7);
            delivery(peer, "room", 8, 8);
        };
    });
    peers[0].ws.terminate();
    await waitFor(() => got.length === 3, "the replay and a live one");
    assert.deepEqual(resume.since, { epoch: "E", rev: 6 });
    assert.deepEqual(got, [6, 7, 8]);
    assert.equal(rec.length, 1);
    assert.deepEqual(rec[0], { topic: "room", recovered: true,
        reason: "reconnect", replayed: 1, epoch: "E", rev: 7 });

    /* again, but the epoch changed meanwhile: reload */
    server.once("connection", () => {
        const peer = peers[peers.length - 1];
        peer.onResume = (m) => {
            answer(peer, m, { data: { n: 100 }, rev: 2, epoch: "F", ts: 50,
                              recovered: false, replayed: 0 });
            delivery(peer, "room", 3, 3);
        };
    });
    peers[peers.length - 1].ws.terminate();
    await waitFor(() => rec.length === 2, "the second resume");
    assert.deepEqual(resume.since, { epoch: "E", rev: 8 });
    assert.deepEqual(rec[1], { topic: "room", recovered: false,
        reason: "reconnect", replayed: 0, epoch: "F", rev: 2,
        value: { data: { n: 100 }, rev: 2, epoch: "F", ts: 50 } });
    /* rev 3 of the new epoch is applied, though below 8 of the old one */
    await waitFor(() => got.length === 4, "rev 3 of F");
    assert.deepEqual(got, [6, 7, 8, 3]);

    /* a resync event */
    send(peers[peers.length - 1], { action: "resync", topic: "room",
        reason: "gap", data: { n: 57 }, rev: 57, epoch: "F", ts: 99,
        type: "event" });
    await waitFor(() => rec.length === 3, "the resync");
    assert.deepEqual(rec[2], { topic: "room", recovered: false,
        reason: "gap", replayed: 0, epoch: "F", rev: 57,
        value: { data: { n: 57 }, rev: 57, epoch: "F", ts: 99 } });
    delivery(peers[peers.length - 1], "room", 58, 58);
    await waitFor(() => got.length === 5, "rev 58");
    await c.close();
});

test("a subscribe made while reconnecting is sent once", async () => {
    script = (peer, m) => {
        if (m.action === "subscribe") {
            answer(peer, m, { data: null, rev: 0, epoch: "E", ts: 0 });
        }
    };
    peers = [];
    const c = await connect({ url, reconnect: { initialDelayMs: 100,
                                                maxDelayMs: 100 } });
    await c.subscribe("early", () => {});
    peers[0].ws.terminate();
    await waitFor(() => c.state === "reconnecting", "reconnecting");
    const rec = [];
    const late = c.subscribe("late", () => {},
                             { onRecovery: (r) => rec.push(r) });
    await waitFor(() => peers.length === 2, "the second connection");
    await late;
    const subs = peers[1].got.filter((m) => m.action === "subscribe");
    /* "early" resumes first, then "late" is sent once, as a plain one */
    assert.deepEqual(subs.map((m) => [m.topic, m.since]),
                     [["early", { epoch: "E", rev: 0 }], ["late", undefined]]);
    assert.deepEqual(rec, []);
    await c.close();
});
