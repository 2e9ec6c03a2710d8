/*
 * A scripted broker for page tests of wire forms the real one may not
 * speak yet (docs/protocol.md, and the getSchema and "errors" forms of
 * docs/schemas.md): one Node HTTP server that serves the console from
 * CONSOLE_DIR at /console/, a status document at /status, and a
 * WebSocket at /ws whose answers the test writes.
 *
 *   const b = await new ScriptedBroker({
 *       listTopics: () => ({ data: [...] }),
 *       getSchema: (req) => ({ data: ..., version: 2, ... }),
 *   }).start();
 *
 * A handler gets the request and returns the answer's members (code 200
 * unless it says otherwise); an action without a handler is answered
 * 400 "unknown action: <action>", as the broker does.  b.got holds every
 * request, in order.
 */

import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { WebSocketServer } from "ws";
import { CONSOLE_DIR } from "./harness.mjs";

const TYPES = {
    ".html": "text/html", ".css": "text/css", ".js": "text/javascript",
    ".svg": "image/svg+xml",
};

export class ScriptedBroker {
    constructor(handlers, { status = {} } = {}) {
        this.handlers = handlers;
        this.status = status;
        this.got = [];
        this.sockets = new Set();
    }

    get port() {
        return this.http.address().port;
    }

    get url() {
        return "ws://127.0.0.1:" + this.port + "/ws";
    }

    async start() {
        this.ws = new WebSocketServer({
            noServer: true,
            handleProtocols: (offered) =>
                offered.has("dataloom.v2") ? "dataloom.v2" : false,
        });
        this.ws.on("connection", (s) => {
            this.sockets.add(s);
            s.on("close", () => this.sockets.delete(s));
            s.on("message", (m) => this.answer(s, JSON.parse(String(m))));
        });
        this.http = createServer((req, res) => this.serve(req, res));
        this.http.on("upgrade", (req, sock, head) => {
            if (req.url !== "/ws") {
                sock.destroy();
                return;
            }
            this.ws.handleUpgrade(req, sock, head,
                                  (s) => this.ws.emit("connection", s));
        });
        await new Promise((r) => this.http.listen(0, "127.0.0.1", r));
        return this;
    }

    answer(sock, req) {
        this.got.push(req);
        const fn = this.handlers[req.action];
        const members = fn ? fn(req) : {
            code: 400, message: "unknown action: " + req.action };
        const { code = 200, ...rest } = members ?? {};
        sock.send(JSON.stringify({ id: req.id, action: req.action, code,
                                   ...rest, type: "response" }));
    }

    /* a message to every connection (a delivery, an event) */
    push(msg) {
        for (const s of this.sockets) {
            s.send(JSON.stringify(msg));
        }
    }

    async serve(req, res) {
        const path = new URL(req.url, "http://x").pathname;
        if (path === "/status") {
            res.writeHead(200, { "Content-Type": "application/json" });
            res.end(JSON.stringify(this.status));
            return;
        }
        const rel = normalize(path.replace(/^\/console\//, "/")
                              .replace(/\/$/, "/index.html"));
        if (!path.startsWith("/console/") || rel.includes("..")) {
            res.writeHead(404).end();
            return;
        }
        try {
            const body = await readFile(join(CONSOLE_DIR, rel));
            res.writeHead(200, {
                "Content-Type": TYPES[extname(rel)]
                    ?? "application/octet-stream",
                "Content-Security-Policy":
                    "default-src 'self'; connect-src 'self'",
            });
            res.end(body);
        } catch {
            res.writeHead(404).end();
        }
    }

    async stop() {
        for (const s of this.sockets) {
            s.terminate();
        }
        await new Promise((r) => this.ws.close(r));
        await new Promise((r) => this.http.close(r));
    }
}
