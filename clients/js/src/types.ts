/* The shapes of what the client takes and gives. */

import type { WebSocketConstructor } from "./socket.js";

/* a map from topic names to the type of their data (see dataloom-types) */
export type AnyTopicMap = Record<string, any>;

export interface ReconnectOptions {
    /* first backoff ceiling, ms (default 250) */
    initialDelayMs?: number;
    /* largest backoff ceiling, ms (default 15000) */
    maxDelayMs?: number;
    /* give up after this many failed attempts in a row (default: never) */
    maxAttempts?: number;
}

export interface ConnectOptions {
    url: string;
    /* an API key or a token; both are sent the same way */
    apiKey?: string;
    token?: string;
    /*
     * where the credential goes: "header" (Authorization: Bearer, needs
     * the ws package, the default in Node), "protocol" (a
     * dataloom.token.<credential> subprotocol entry, the default
     * elsewhere) or "query" (?access_token=)
     */
    credentialIn?: "header" | "protocol" | "query";
    /* the ClientId header (Node only: browsers cannot set headers) */
    clientId?: string;
    /* offered subprotocols; default ["dataloom.v2"], [] for v1 only */
    protocols?: string[];
    /* bound on every request, and on the handshake (default 10000 ms) */
    timeoutMs?: number;
    /* true (default), false, or backoff settings */
    reconnect?: boolean | ReconnectOptions;
    /* requests sent and not yet answered (default 128, the server's) */
    maxInFlight?: number;
    /* requests waiting for a free slot or a connection (default 1024) */
    maxQueued?: number;
    /* a WebSocket constructor to use instead of the global or ws */
    WebSocket?: WebSocketConstructor;
}

export type ConnectionState =
    | "connecting" | "open" | "reconnecting" | "closed";

export interface TopicInfo {
    name: string;
    schema: { version: number; schema: unknown };
}

export type Compatibility =
    | "none" | "backward" | "forward" | "full" | "backward_transitive"
    | "forward_transitive" | "full_transitive";

/* what getSchema answers */
export interface SchemaInfo {
    schema: unknown;
    version: number;
    /* the versions the server keeps, oldest first */
    versions: number[];
    schemaType: "keys" | "json-schema";
    compatibility: Compatibility;
}

export interface Delivery<T = unknown> {
    topic: string;
    action: "publish" | "sendWithoutSave";
    data: T;
    /* the publisher's ClientId */
    senderId: string;
    /* the publisher's request id */
    id: string;
    /* v2, stored publishes only */
    rev?: number;
    ts?: number;
}

export interface Value<T = unknown> {
    data: T | null;
    /* v2 only */
    rev?: number;
    epoch?: string;
    ts?: number;
}

export interface HistoryOptions {
    since?: number;
    limit?: number;
    reverse?: boolean;
    from?: number;
    until?: number;
}

export interface HistoryEntry<T = unknown> {
    rev: number;
    ts: number;
    data: T;
    senderId: string;
}

export interface HistoryPage<T = unknown> {
    entries: HistoryEntry<T>[];
    epoch: string;
    rev: number;
}

/*
 * What a subscription learns after a reconnect or a resync event.
 * recovered: true means nothing after the last applied revision was lost
 * (the missed revisions are replayed to the handler); false means the
 * application must take `value` (when the server sent one) or reload.
 */
export interface Recovery<T = unknown> {
    topic: string;
    recovered: boolean;
    /* "reconnect", or the resync event's reason ("gap", "epoch") */
    reason: string;
    /* revisions replayed to the handler (recovered only) */
    replayed: number;
    epoch?: string;
    rev?: number;
    /* the current value when not recovered and the server sent it */
    value?: Value<T>;
}

export interface SubscribeOptions<T = unknown> {
    /* also fetch the current value, in the same round trip (v2) */
    snapshot?: boolean;
    /* called after every resubscription and resync of this topic */
    onRecovery?: (r: Recovery<T>) => void;
}

export interface Subscription<T = unknown> {
    topic: string;
    /* the value at subscription time, with snapshot (v2) */
    snapshot?: Value<T>;
    unsubscribe(): Promise<void>;
}

export interface ClientEvents {
    state: (s: ConnectionState) => void;
    recovery: (r: Recovery) => void;
    /* a failed reconnect attempt or another error without a caller */
    error: (e: Error) => void;
}
