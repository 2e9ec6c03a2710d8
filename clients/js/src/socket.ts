/*
 * A WebSocket of either kind behind one small interface: the global
 * WebSocket (browsers, Deno, Node 22+) or the "ws" package in Node, which
 * is imported only when it is used, so browsers load nothing extra.
 *
 * Only "ws" can send request headers (Authorization, ClientId); the
 * global WebSocket cannot, and credentials then go in a subprotocol entry
 * or the query string (see docs/clients.md).
 */

import { DataLoomError } from "./errors.js";

export interface SocketHandlers {
    onMessage(text: string): void;
    onClose(code: number, reason: string): void;
}

export interface LoomSocket {
    /* the subprotocol the server accepted, "" for none */
    readonly protocol: string;
    send(text: string): void;
    close(code?: number, reason?: string): void;
    /* bytes given to send() and not yet written to the network */
    bufferedAmount(): number;
}

/* the part of the standard WebSocket constructor the client uses */
export interface WebSocketLike {
    readonly protocol: string;
    readonly bufferedAmount: number;
    binaryType: string;
    onopen: ((ev: any) => void) | null;
    onmessage: ((ev: { data: any }) => void) | null;
    onclose: ((ev: { code: number; reason: string }) => void) | null;
    onerror: ((ev: any) => void) | null;
    send(data: string): void;
    close(code?: number, reason?: string): void;
}

export type WebSocketConstructor =
    new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface OpenOptions {
    url: string;
    protocols: string[];
    headers: Record<string, string>;
    timeoutMs: number;
    /* use this constructor instead of choosing one */
    WebSocket?: WebSocketConstructor | undefined;
}

export const isNode = typeof process !== "undefined"
    && typeof process.versions === "object"
    && typeof process.versions.node === "string";

let wsModule: Promise<any> | null = null;

function loadWs(): Promise<any> {
    if (wsModule === null) {
        /* the indirection keeps bundlers from pulling "ws" in */
        const name = "ws";
        wsModule = import(name).then((m) => m.default ?? m.WebSocket,
                                     () => null);
    }
    return wsModule;
}

export async function openSocket(opts: OpenOptions,
                                 handlers: SocketHandlers)
    : Promise<LoomSocket>
{
    if (opts.WebSocket === undefined && isNode) {
        const Ws = await loadWs();
        if (Ws) {
            return openWs(Ws, opts, handlers);
        }
    }

    const Ctor = opts.WebSocket
        ?? (globalThis as any).WebSocket as WebSocketConstructor | undefined;
    if (!Ctor) {
        throw new DataLoomError("connect_failed",
            "no WebSocket available: install the \"ws\" package or pass "
            + "the WebSocket option");
    }
    if (Object.keys(opts.headers).length) {
        throw new DataLoomError("connect_failed",
            "this WebSocket cannot send headers ("
            + Object.keys(opts.headers).join(", ") + "): install the \"ws\" "
            + "package, or use credentialIn \"protocol\" or \"query\" "
            + "and no clientId");
    }
    return openStandard(Ctor, opts, handlers);
}

function decode(data: any): string {
    if (typeof data === "string") {
        return data;
    }
    if (data instanceof ArrayBuffer) {
        return new TextDecoder().decode(data);
    }
    if (ArrayBuffer.isView(data)) {
        return new TextDecoder().decode(data as Uint8Array);
    }
    if (Array.isArray(data)) {
        return data.map(decode).join("");
    }
    return String(data);
}

function openStandard(Ctor: WebSocketConstructor, opts: OpenOptions,
                      handlers: SocketHandlers): Promise<LoomSocket>
{
    return new Promise((resolve, reject) => {
        let ws: WebSocketLike;
        let opened = false;

        try {
            ws = opts.protocols.length
                ? new Ctor(opts.url, opts.protocols)
                : new Ctor(opts.url);
        } catch (e) {
            reject(new DataLoomError("connect_failed", String(e)));
            return;
        }
        ws.binaryType = "arraybuffer";

        const timer = setTimeout(() => {
            ws.onclose = null;
            ws.close();
            reject(new DataLoomError("connect_failed",
                "no WebSocket handshake within " + opts.timeoutMs + " ms"));
        }, opts.timeoutMs);

        ws.onopen = () => {
            opened = true;
            clearTimeout(timer);
            resolve({
                protocol: ws.protocol ?? "",
                send: (t) => ws.send(t),
                close: (c, r) => ws.close(c, r),
                bufferedAmount: () => ws.bufferedAmount ?? 0,
            });
        };
        ws.onmessage = (ev) => handlers.onMessage(decode(ev.data));
        ws.onerror = () => { /* onclose follows */ };
        ws.onclose = (ev) => {
            if (!opened) {
                clearTimeout(timer);
                reject(new DataLoomError("connect_failed",
                    "the WebSocket handshake failed (close code "
                    + ev.code + ")"));
                return;
            }
            handlers.onClose(ev.code, ev.reason);
        };
    });
}

function openWs(Ws: any, opts: OpenOptions, handlers: SocketHandlers)
    : Promise<LoomSocket>
{
    return new Promise((resolve, reject) => {
        const headers = { ...opts.headers };
        let accepted = "";
        let opened = false;
        let refused = false;
        let ws: any;

        /*
         * The offer goes in as a plain header and the answer is taken out
         * in "upgrade", before ws checks it: ws refuses a 101 without a
         * subprotocol when one was offered, and a server without v2 sends
         * none.  Browsers accept that answer; so does this client.
         */
        if (opts.protocols.length) {
            headers["Sec-WebSocket-Protocol"] = opts.protocols.join(", ");
        }

        try {
            ws = new Ws(opts.url, {
                headers,
                perMessageDeflate: false,
                handshakeTimeout: opts.timeoutMs,
            });
        } catch (e) {
            reject(new DataLoomError("connect_failed", String(e)));
            return;
        }

        ws.on("upgrade", (res: any) => {
            const p = res.headers["sec-websocket-protocol"];
            if (typeof p === "string") {
                accepted = p.trim();
                delete res.headers["sec-websocket-protocol"];
            }
        });
        ws.on("unexpected-response", (_req: any, res: any) => {
            let body = "";
            let done = false;
            const finish = () => {
                if (done) {
                    return;
                }
                done = true;
                clearTimeout(t);
                reject(new DataLoomError("connect_failed",
                    "the server refused the WebSocket: " + res.statusCode
                    + (body.trim() ? " " + body.trim() : ""),
                    "", "", res.statusCode));
                ws.terminate();
            };
            /* the refusal's short body names the reason */
            const t = setTimeout(finish, 1000);
            refused = true;
            res.setEncoding("utf8");
            res.on("data", (c: string) => {
                body = (body + c).slice(0, 1024);
            });
            res.on("end", finish);
            res.on("error", finish);
            res.on("close", finish);
        });
        ws.on("open", () => {
            opened = true;
            if (accepted && !opts.protocols.includes(accepted)) {
                ws.terminate();
                reject(new DataLoomError("connect_failed",
                    "the server chose a subprotocol that was not offered: "
                    + accepted));
                return;
            }
            resolve({
                protocol: accepted,
                send: (t) => ws.send(t),
                close: (c, r) => ws.close(c, r),
                bufferedAmount: () => ws.bufferedAmount,
            });
        });
        ws.on("message", (data: any) => handlers.onMessage(decode(data)));
        ws.on("error", (e: Error) => {
            if (!opened && !refused) {
                reject(new DataLoomError("connect_failed", e.message));
            }
        });
        ws.on("close", (code: number, reason: Buffer) => {
            if (opened) {
                handlers.onClose(code, reason.toString());
            } else if (!refused) {
                reject(new DataLoomError("connect_failed",
                    "the connection closed during the handshake"));
            }
        });
    });
}
