/*
 * The one error type of the client.  Errors the server answered carry its
 * numeric code (400, 401, 403, 500), its message text, and the action and
 * id of the request.  Errors the client itself raises carry a string code.
 */

export type ClientErrorCode =
    | "timeout"          /* no answer within timeoutMs */
    | "disconnected"     /* the connection broke before the answer came */
    | "closed"           /* close() was called */
    | "queue_full"       /* more requests waiting than maxQueued */
    | "connect_failed"   /* the WebSocket handshake failed */
    | "unsupported";     /* the server does not speak what the call needs */

/* one place where a message does not match a JSON Schema */
export interface SchemaError {
    /* JSON Pointer into the refused data ("" for the whole of it) */
    instancePath: string;
    keyword: string;
    message: string;
}

/* one reason a schema change breaks the topic's compatibility mode */
export interface SchemaDifference {
    path: string;
    reason: string;
}

export class DataLoomError extends Error {
    readonly code: number | ClientErrorCode;
    readonly action: string;
    readonly id: string;
    /* HTTP status of a refused handshake, when known */
    readonly status?: number;
    /* a publish refused by a JSON Schema topic: where and why */
    errors?: SchemaError[];
    /* a schema change refused by the compatibility mode (409) */
    differences?: SchemaDifference[];

    constructor(code: number | ClientErrorCode, message: string,
                action = "", id = "", status?: number)
    {
        super(message);
        this.name = "DataLoomError";
        this.code = code;
        this.action = action;
        this.id = id;
        if (status !== undefined) {
            this.status = status;
        }
    }

    /* true when the server answered the request with an error */
    get fromServer(): boolean {
        return typeof this.code === "number";
    }
}
