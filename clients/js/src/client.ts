/*
 * The Data Loom client: one WebSocket, requests matched to their answers
 * in order, a bounded window of requests in flight, subscriptions that
 * survive reconnects and resume from their last revision on dataloom.v2.
 */

import { DataLoomError } from "./errors.js";
import { isNode, openSocket, type LoomSocket } from "./socket.js";
import type {
    AnyTopicMap, ClientEvents, Compatibility, ConnectOptions,
    ConnectionState, Delivery, HistoryOptions, HistoryPage, Recovery,
    SchemaInfo, SubscribeOptions, Subscription, TopicInfo, Value,
} from "./types.js";

export const V2 = "dataloom.v2";

type Frame = Record<string, unknown>;
type Answer = Record<string, any>;

interface Request {
    frame: Frame;
    id: string;
    action: string;
    resolve: (a: Answer) => void;
    reject: (e: DataLoomError) => void;
    timer: ReturnType<typeof setTimeout> | undefined;
    /* settled already (timed out): the answer is only awaited for order */
    done: boolean;
    /* runs as the success answer arrives, before any later message */
    onOk: ((a: Answer) => void) | undefined;
}

interface Listener {
    handler: (d: Delivery<any>) => void;
    onRecovery: ((r: Recovery<any>) => void) | undefined;
}

interface TopicSub {
    topic: string;
    listeners: Set<Listener>;
    /* last applied position (v2) */
    epoch: string | undefined;
    rev: number | undefined;
    /* the server answered a subscribe: a reconnect subscribes again */
    live: boolean;
}

export interface RegisterOptions {
    retention?: { history?: number | null; maxAge?: number | null };
    storage?: "redis" | "memory";
    /* absent or "keys": the key-set rule; "json-schema": a JSON Schema */
    schemaType?: "keys" | "json-schema";
    compatibility?: Compatibility;
}

function backoff(attempt: number, initial: number, max: number): number {
    /* full jitter: uniform in [0, min(max, initial * 2^attempt)] */
    const ceiling = Math.min(max, initial * Math.pow(2, attempt));
    return Math.floor(Math.random() * ceiling);
}

export class DataLoomClient<M extends AnyTopicMap = AnyTopicMap> {
    private opts: ConnectOptions;
    private readonly timeoutMs: number;
    private readonly maxInFlight: number;
    private readonly maxQueued: number;
    private readonly reconnect: {
        enabled: boolean; initial: number; max: number; attempts: number;
    };

    private socket: LoomSocket | null = null;
    private stateValue: ConnectionState = "connecting";
    private seq = 0;
    private inflight: Request[] = [];
    private queue: Request[] = [];
    private subs = new Map<string, TopicSub>();
    private listeners: { [K in keyof ClientEvents]: Set<ClientEvents[K]> } =
        { state: new Set(), recovery: new Set(), error: new Set() };
    private retryTimer: ReturnType<typeof setTimeout> | undefined;
    private closeWaiters: (() => void)[] = [];

    constructor(opts: ConnectOptions) {
        if (!opts || typeof opts.url !== "string" || opts.url === "") {
            throw new TypeError("connect: \"url\" is required");
        }
        this.opts = opts;
        this.timeoutMs = opts.timeoutMs ?? 10000;
        this.maxInFlight = Math.max(1, opts.maxInFlight ?? 128);
        this.maxQueued = Math.max(0, opts.maxQueued ?? 1024);
        const r = opts.reconnect ?? true;
        const ro = typeof r === "object" ? r : {};
        this.reconnect = {
            enabled: r !== false,
            initial: ro.initialDelayMs ?? 250,
            max: ro.maxDelayMs ?? 15000,
            attempts: ro.maxAttempts ?? Infinity,
        };
    }

    /* ---- connection ---- */

    get state(): ConnectionState {
        return this.stateValue;
    }

    /* true when the server accepted dataloom.v2 on the current connection */
    get v2(): boolean {
        return this.socket !== null && this.socket.protocol === V2;
    }

    /* the subprotocol the server accepted, "" for none */
    get protocol(): string {
        return this.socket ? this.socket.protocol : "";
    }

    /* requests sent and not answered yet, and requests waiting */
    get inFlight(): number {
        return this.inflight.length;
    }

    get queued(): number {
        return this.queue.length;
    }

    on<K extends keyof ClientEvents>(event: K, fn: ClientEvents[K])
        : () => void
    {
        this.listeners[event].add(fn);
        return () => { this.listeners[event].delete(fn); };
    }

    private emit<K extends keyof ClientEvents>(
        event: K, ...args: Parameters<ClientEvents[K]>): void
    {
        for (const fn of [...this.listeners[event]]) {
            try {
                (fn as (...a: unknown[]) => void)(...args);
            } catch (e) {
                if (event !== "error") {
                    this.emit("error", e as Error);
                }
            }
        }
    }

    private setState(s: ConnectionState): void {
        if (this.stateValue !== s) {
            this.stateValue = s;
            this.emit("state", s);
        }
    }

    /* the first connection: rejects when the handshake fails */
    async open(): Promise<this> {
        this.setState("connecting");
        let socket: LoomSocket;
        try {
            socket = await this.dial();
        } catch (e) {
            this.shutdown(e as DataLoomError);
            throw e;
        }
        this.attach(socket);
        return this;
    }

    private dial(): Promise<LoomSocket> {
        const o = this.opts;
        const cred = o.token ?? o.apiKey;
        const useWs = isNode && o.WebSocket === undefined;
        const where = o.credentialIn ?? (useWs ? "header" : "protocol");
        const protocols = [...(o.protocols ?? [V2])];
        const headers: Record<string, string> = {};
        let url = o.url;

        if (cred !== undefined && cred !== "") {
            if (where === "header") {
                headers["Authorization"] = "Bearer " + cred;
            } else if (where === "protocol") {
                protocols.push("dataloom.token." + cred);
            } else {
                url += (url.includes("?") ? "&" : "?") + "access_token="
                    + encodeURIComponent(cred);
            }
        }
        if (o.clientId !== undefined) {
            headers["ClientId"] = o.clientId;
        }

        let socket: LoomSocket | null = null;
        return openSocket({
            url, protocols, headers, timeoutMs: this.timeoutMs,
            WebSocket: o.WebSocket,
        }, {
            onMessage: (t) => this.onMessage(t),
            onClose: (code, reason) => {
                if (socket !== null) {
                    this.onClose(socket, code, reason);
                }
            },
        }).then((s) => { socket = s; return s; });
    }

    private attach(socket: LoomSocket): void {
        this.socket = socket;
        this.setState("open");
        this.resubscribe();
        this.pump();
    }

    private onClose(socket: LoomSocket, code: number, reason: string): void {
        if (this.socket !== socket) {
            return;
        }
        this.socket = null;
        const why = "the connection closed (" + code
            + (reason ? " " + reason : "") + ")";
        this.failInflight(new DataLoomError(
            this.stateValue === "closed" ? "closed" : "disconnected", why));

        if (this.stateValue === "closed") {
            for (const w of this.closeWaiters.splice(0)) {
                w();
            }
            return;
        }
        if (!this.reconnect.enabled) {
            this.shutdown(new DataLoomError("disconnected", why));
            return;
        }
        this.setState("reconnecting");
        this.scheduleRetry(0);
    }

    private scheduleRetry(attempt: number): void {
        const r = this.reconnect;
        if (attempt >= r.attempts) {
            this.shutdown(new DataLoomError("disconnected",
                "gave up reconnecting after " + attempt + " attempts"));
            return;
        }
        this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.dial().then((socket) => {
                if (this.stateValue === "closed") {
                    socket.close(1000);
                    return;
                }
                this.attach(socket);
            }, (e: Error) => {
                if (this.stateValue === "closed") {
                    return;
                }
                this.emit("error", e);
                this.scheduleRetry(attempt + 1);
            });
        }, backoff(attempt, r.initial, r.max));
    }

    private shutdown(err: DataLoomError): void {
        this.setState("closed");
        if (this.retryTimer !== undefined) {
            clearTimeout(this.retryTimer);
            this.retryTimer = undefined;
        }
        this.failInflight(err);
        for (const q of this.queue.splice(0)) {
            this.settle(q, null, err);
        }
    }

    /* closes the connection; every request not answered yet is rejected */
    close(): Promise<void> {
        const socket = this.socket;
        this.shutdown(new DataLoomError("closed", "the client was closed"));
        this.subs.clear();
        if (socket === null) {
            return Promise.resolve();
        }
        return new Promise((resolve) => {
            const t = setTimeout(resolve, 2000);
            this.closeWaiters.push(() => { clearTimeout(t); resolve(); });
            socket.close(1000);
        });
    }

    /* ---- requests ---- */

    private request(action: string, fields: Frame, front = false,
                    onOk?: (a: Answer) => void): Promise<Answer>
    {
        return new Promise((resolve, reject) => {
            if (this.stateValue === "closed") {
                reject(new DataLoomError("closed", "the client is closed",
                                         action));
                return;
            }
            const id = String(++this.seq);
            const req: Request = {
                frame: { id, action, ...fields, requireAck: true },
                id, action, resolve, reject, timer: undefined, done: false,
                onOk,
            };

            if (front) {
                /* resubscriptions: ahead of everything, not bounded */
                this.queue.unshift(req);
            } else if (this.queue.length >= this.maxQueued
                       && !(this.queue.length === 0 && this.canSend()))
            {
                reject(new DataLoomError("queue_full",
                    "too many requests waiting: " + this.inflight.length
                    + " in flight and " + this.queue.length
                    + " queued (maxQueued " + this.maxQueued + ")",
                    action, id));
                return;
            } else {
                this.queue.push(req);
            }

            req.timer = setTimeout(() => {
                req.timer = undefined;
                const i = this.queue.indexOf(req);
                if (i >= 0) {
                    this.queue.splice(i, 1);
                }
                /* one in flight keeps its place until its answer comes */
                this.settle(req, null, new DataLoomError("timeout",
                    action + " got no answer within " + this.timeoutMs
                    + " ms", action, id));
            }, this.timeoutMs);

            if (!front) {
                this.pump();
            }
        });
    }

    private canSend(): boolean {
        return this.socket !== null && this.stateValue === "open"
            && this.inflight.length < this.maxInFlight;
    }

    private pump(): void {
        while (this.queue.length > 0 && this.canSend()) {
            const req = this.queue.shift() as Request;
            this.inflight.push(req);
            try {
                (this.socket as LoomSocket).send(JSON.stringify(req.frame));
            } catch (e) {
                /* the close event follows and fails it */
                break;
            }
        }
    }

    private settle(req: Request, answer: Answer | null,
                   err: DataLoomError | null): void
    {
        if (req.timer !== undefined) {
            clearTimeout(req.timer);
            req.timer = undefined;
        }
        if (req.done) {
            return;
        }
        req.done = true;
        if (err) {
            req.reject(err);
        } else {
            req.resolve(answer as Answer);
        }
    }

    private failInflight(err: DataLoomError): void {
        for (const req of this.inflight.splice(0)) {
            this.settle(req, null, err);
        }
    }

    /* ---- incoming ---- */

    private onMessage(text: string): void {
        let msg: any;
        try {
            msg = JSON.parse(text);
        } catch (e) {
            this.emit("error", new Error("undecodable server message: "
                                         + text.slice(0, 200)));
            return;
        }
        if (msg === null || typeof msg !== "object") {
            return;
        }
        if (msg.type === "response") {
            this.onAnswer(msg);
        } else if (msg.type === "event") {
            this.onEvent(msg);
        } else if (msg.type === undefined && typeof msg.topic === "string") {
            this.onDelivery(msg);
        }
    }

    private onAnswer(msg: Answer): void {
        /* answers come in request order; the id is checked all the same */
        let i = 0;
        if (this.inflight.length === 0 || this.inflight[0].id !== msg.id) {
            i = this.inflight.findIndex((r) => r.id === msg.id);
            if (i < 0) {
                this.emit("error", new Error("an answer to no request: "
                                             + JSON.stringify(msg)));
                return;
            }
        }
        const req = this.inflight.splice(i, 1)[0];
        if (msg.code === 200) {
            if (req.onOk && !req.done) {
                try {
                    req.onOk(msg);
                } catch (e) {
                    this.emit("error", e as Error);
                }
            }
            this.settle(req, msg, null);
        } else {
            const e = new DataLoomError(
                typeof msg.code === "number" ? msg.code : 500,
                String(msg.message ?? ""), String(msg.action ?? req.action),
                String(msg.id ?? req.id));
            if (Array.isArray(msg.errors)) {
                e.errors = msg.errors;
            }
            if (Array.isArray(msg.differences)) {
                e.differences = msg.differences;
            }
            this.settle(req, null, e);
        }
        this.pump();
    }

    private onDelivery(msg: Answer): void {
        const sub = this.subs.get(msg.topic);
        if (sub === undefined) {
            return;
        }
        if (typeof msg.rev === "number" && sub.rev !== undefined) {
            if (msg.rev <= sub.rev) {
                /* already applied (before a snapshot's or resume's rev) */
                return;
            }
            sub.rev = msg.rev;
        }
        const d: Delivery = {
            topic: msg.topic, action: msg.action, data: msg.data,
            senderId: msg.senderId, id: msg.id,
        };
        if (typeof msg.rev === "number") {
            d.rev = msg.rev;
            d.ts = msg.ts;
        }
        for (const l of [...sub.listeners]) {
            try {
                l.handler(d);
            } catch (e) {
                this.emit("error", e as Error);
            }
        }
    }

    private onEvent(msg: Answer): void {
        if (msg.action !== "resync" || typeof msg.topic !== "string") {
            return;
        }
        const sub = this.subs.get(msg.topic);
        if (sub === undefined) {
            return;
        }
        sub.epoch = msg.epoch;
        sub.rev = msg.rev;
        this.recovered(sub, {
            topic: sub.topic, recovered: false, reason: String(msg.reason),
            replayed: 0, epoch: msg.epoch, rev: msg.rev,
            value: { data: msg.data, rev: msg.rev, epoch: msg.epoch,
                     ts: msg.ts },
        });
    }

    private recovered(sub: TopicSub, r: Recovery): void {
        for (const l of [...sub.listeners]) {
            if (l.onRecovery) {
                try {
                    l.onRecovery(r);
                } catch (e) {
                    this.emit("error", e as Error);
                }
            }
        }
        this.emit("recovery", r);
    }

    /* after a reconnect: every subscription again, resumed on v2 */
    private resubscribe(): void {
        /* one still waiting for its first answer sends its own again */
        const subs = [...this.subs.values()].filter((s) => s.live).reverse();
        for (const sub of subs) {
            this.resubscribeOne(sub, 0);
        }
    }

    private resubscribeOne(sub: TopicSub, attempt: number): void {
        const fields: Frame = { topic: sub.topic };
        const resume = this.v2 && sub.epoch !== undefined;
        if (resume) {
            fields.since = { epoch: sub.epoch, rev: sub.rev ?? 0 };
        }
        if (this.v2) {
            fields.snapshot = true;
        }
        const from = sub.rev;
        /*
         * The position is taken, and the application told, as the
         * answer arrives: the replayed deliveries come right after it.
         */
        const onOk = (a: Answer) => {
            if (this.subs.get(sub.topic) !== sub) {
                return;
            }
            const r: Recovery = {
                topic: sub.topic, recovered: a.recovered === true,
                reason: "reconnect",
                replayed: typeof a.replayed === "number" ? a.replayed : 0,
            };
            if (typeof a.epoch === "string") {
                r.epoch = a.epoch;
                r.rev = a.rev;
            }
            if (r.recovered) {
                /* the replay follows: it moves sub.rev from `from` */
                sub.rev = from;
            } else {
                sub.epoch = a.epoch;
                sub.rev = a.rev;
                if ("data" in a) {
                    r.value = { data: a.data, rev: a.rev, epoch: a.epoch,
                                ts: a.ts };
                }
            }
            this.recovered(sub, r);
        };
        this.request("subscribe", fields, true, onOk).catch(
            (e: DataLoomError) => {
                if (this.subs.get(sub.topic) !== sub) {
                    return;
                }
                if (e.fromServer
                    && e.message.startsWith("storage unavailable"))
                {
                    /*
                     * the broker is back but its Redis link not yet:
                     * the subscription stays and is asked for again
                     */
                    const r = this.reconnect;
                    setTimeout(() => {
                        if (this.subs.get(sub.topic) === sub
                            && this.stateValue === "open")
                        {
                            this.resubscribeOne(sub, attempt + 1);
                            this.pump();
                        }
                    }, backoff(attempt, r.initial, r.max));
                } else if (e.fromServer) {
                    /* the topic is gone: the subscription ends */
                    this.subs.delete(sub.topic);
                }
                this.emit("error", e);
            });
    }

    /* ---- the API ---- */

    async registerTopic(topic: string, schema: object,
                        opts: RegisterOptions = {}): Promise<void>
    {
        await this.request("registerTopic", { topic, data: schema, ...opts });
    }

    async updateSchema(topic: string, schema: object,
                       opts: RegisterOptions = {}): Promise<void>
    {
        await this.request("updateSchema", { topic, data: schema, ...opts });
    }

    async unregisterTopic(topic: string): Promise<void> {
        await this.request("unregisterTopic", { topic });
    }

    /* every topic, following the server's pages */
    async listTopics(): Promise<TopicInfo[]> {
        const all: TopicInfo[] = [];
        let cursor: string | undefined;
        for (;;) {
            const a = await this.request("listTopics",
                cursor === undefined ? {} : { data: { cursor } });
            if (Array.isArray(a.data)) {
                all.push(...a.data);
            }
            if (typeof a.cursor !== "string") {
                break;
            }
            cursor = a.cursor;
        }
        return all;
    }

    /* a topic's schema: the current version, or the one named */
    async getSchema(topic: string, version?: number): Promise<SchemaInfo> {
        const a = await this.request("getSchema",
            version === undefined ? { topic } : { topic, version });
        return {
            schema: a.data, version: a.version,
            versions: Array.isArray(a.versions) ? a.versions : [],
            schemaType: a.schemaType ?? "keys",
            compatibility: a.compatibility ?? "none",
        };
    }

    /*
     * Replaces the connection's token before it expires (close 4001); the
     * new one is also the credential of later reconnects.
     */
    async refreshToken(token: string): Promise<void> {
        await this.request("refreshToken", { data: { token } });
        this.opts = { ...this.opts, token };
    }

    /* resolves with the stored revision on dataloom.v2, else undefined */
    async publish<K extends keyof M & string>(topic: K, data: M[K])
        : Promise<number | undefined>
    {
        const a = await this.request("publish", { topic, data });
        return typeof a.rev === "number" ? a.rev : undefined;
    }

    async sendWithoutSave<K extends keyof M & string>(topic: K, data: M[K])
        : Promise<void>
    {
        await this.request("sendWithoutSave", { topic, data });
    }

    async get<K extends keyof M & string>(topic: K): Promise<Value<M[K]>> {
        const a = await this.request("get", { topic });
        const v: Value<M[K]> = { data: a.data };
        if (typeof a.rev === "number") {
            v.rev = a.rev;
            v.epoch = a.epoch;
            v.ts = a.ts;
        }
        return v;
    }

    /* a page of a topic's history (dataloom.v2) */
    async history<K extends keyof M & string>(topic: K,
                                              opts: HistoryOptions = {})
        : Promise<HistoryPage<M[K]>>
    {
        if (!this.v2) {
            throw new DataLoomError("unsupported",
                "history needs a server that speaks " + V2, "history");
        }
        const a = await this.request("history", { topic, ...opts });
        return { entries: a.data ?? [], epoch: a.epoch, rev: a.rev };
    }

    async subscribe<K extends keyof M & string>(
        topic: K, handler: (d: Delivery<M[K]>) => void,
        opts: SubscribeOptions<M[K]> = {}): Promise<Subscription<M[K]>>
    {
        let sub = this.subs.get(topic);
        const fresh = sub === undefined;
        if (sub === undefined) {
            sub = { topic, listeners: new Set(), epoch: undefined,
                    rev: undefined, live: false };
            this.subs.set(topic, sub);
        }
        const listener: Listener = { handler, onRecovery: opts.onRecovery };
        sub.listeners.add(listener);

        const v2 = this.v2;
        const position = (a: Answer) => {
            /* before any delivery that follows the answer */
            if (sub !== undefined) {
                sub.live = true;
            }
            if (typeof a.epoch === "string" && sub !== undefined
                && (sub.epoch !== a.epoch || sub.rev === undefined
                    || a.rev > sub.rev))
            {
                sub.epoch = a.epoch;
                sub.rev = a.rev;
            }
        };
        let a: Answer;
        try {
            a = await this.request("subscribe",
                v2 ? { topic, snapshot: true } : { topic }, false, position);
        } catch (e) {
            sub.listeners.delete(listener);
            if (fresh && sub.listeners.size === 0
                && this.subs.get(topic) === sub)
            {
                this.subs.delete(topic);
            }
            throw e;
        }

        const result: Subscription<M[K]> = {
            topic,
            unsubscribe: () => this.dropListener(topic, listener),
        };
        if (typeof a.epoch === "string") {
            if (opts.snapshot) {
                result.snapshot = { data: a.data, rev: a.rev, epoch: a.epoch,
                                    ts: a.ts };
            }
        } else if (opts.snapshot) {
            /* v1: the value read after the subscription, not atomically */
            result.snapshot = await this.get(topic);
        }
        return result;
    }

    private async dropListener(topic: string, l: Listener): Promise<void> {
        const sub = this.subs.get(topic);
        if (sub === undefined || !sub.listeners.has(l)) {
            return;
        }
        sub.listeners.delete(l);
        if (sub.listeners.size === 0) {
            await this.unsubscribe(topic);
        }
    }

    /* ends every handler of the topic */
    async unsubscribe(topic: string): Promise<void> {
        this.subs.delete(topic);
        if (this.socket === null) {
            /* not connected: the server holds no subscription */
            return;
        }
        await this.request("unsubscribe", { topic });
    }
}

/* opens a client; rejects with a DataLoomError when the handshake fails */
export function connect<M extends AnyTopicMap = AnyTopicMap>(
    opts: ConnectOptions): Promise<DataLoomClient<M>>
{
    return new DataLoomClient<M>(opts).open();
}
