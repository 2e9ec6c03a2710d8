export { connect, DataLoomClient, V2 } from "./client.js";
export type { RegisterOptions } from "./client.js";
export { DataLoomError } from "./errors.js";
export type { ClientErrorCode, SchemaDifference, SchemaError }
    from "./errors.js";
export type { WebSocketConstructor, WebSocketLike } from "./socket.js";
export type * from "./types.js";
