/*
 * dataloom-types: schemas to TypeScript, from a running broker or a file,
 * and the compiler checking publish and handlers with the result.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { connect } from "../dist/index.js";
import { generate, isJsonSchema, jsonSchemaType, schemaType }
    from "../dist/typegen.js";
import { startBroker } from "./broker.mjs";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(pkg, "dist", "cli.js");
const tsc = join(pkg, "node_modules", "typescript", "bin", "tsc");
const dir = mkdtempSync(join(tmpdir(), "loom-types-"));
let broker;

before(async () => {
    broker = await startBroker();
    const c = await connect({ url: broker.url });
    await c.registerTopic("room", { text: null, user: { name: null,
                                                        id: null } });
    await c.registerTopic("sensor-1", { "value": null, "unit-name": null });
    await c.close();
});

after(async () => {
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(await broker.stop(), []);
});

function run(args) {
    return spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
}

function compile(file) {
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, module: "NodeNext",
                           moduleResolution: "NodeNext", target: "ES2022",
                           skipLibCheck: true, types: [] },
        files: [file],
    }));
    return spawnSync(process.execPath, [tsc, "-p", dir],
                     { encoding: "utf8" });
}

test("key-set schemas: every key, unknown or a nested object", () => {
    assert.equal(schemaType({ a: null, b: { c: 1 } }), [
        "{", "    a: unknown;", "    b: {", "        c: unknown;", "    };",
        "}",
    ].join("\n"));
    assert.equal(schemaType({}), "Record<string, never>");
    /* a key named "type" does not make a JSON Schema */
    assert.equal(isJsonSchema({ type: "string", size: null }), false);
    assert.equal(isJsonSchema({ type: null }), false);
});

test("JSON Schema: the common keywords", () => {
    const s = {
        $schema: "https://json-schema.org/draft/2020-12/schema",
        type: "object",
        required: ["id", "tags"],
        properties: {
            id: { type: "integer" },
            name: { type: ["string", "null"] },
            tags: { type: "array", items: { type: "string" } },
            kind: { enum: ["a", "b"] },
            v: { const: 3 },
            pos: { $ref: "#/$defs/point" },
            any: {},
            either: { anyOf: [{ type: "string" }, { type: "number" }] },
            pair: { type: "array", prefixItems: [{ type: "string" },
                                                 { type: "boolean" }],
                    items: false },
            map: { type: "object",
                   additionalProperties: { type: "number" } },
        },
        additionalProperties: false,
        $defs: { point: { type: "object", required: ["x"],
                          properties: { x: { type: "number" } } } },
    };
    assert.equal(isJsonSchema(s), true);
    assert.equal(schemaType(s), [
        "{",
        "    id: number;",
        "    name?: string | null;",
        "    tags: string[];",
        "    kind?: \"a\" | \"b\";",
        "    v?: 3;",
        "    pos?: {",
        "        x: number;",
        "    };",
        "    any?: unknown;",
        "    either?: string | number;",
        "    pair?: [string, boolean];",
        "    map?: Record<string, number>;",
        "}",
    ].join("\n"));
    assert.equal(isJsonSchema({ type: "object", properties: {} }), true);
    assert.equal(schemaType({ type: "string", format: "email" }), "string");
    assert.equal(jsonSchemaType({ not: { type: "string" } }), "unknown");
});

test("generated names and the TopicMap", () => {
    const text = generate([
        { name: "a-b", schema: { version: 2, schema: { x: null } } },
        { name: "a_b", schema: { version: 0, schema: { y: null } } },
        { name: "9", schema: { version: 0, schema: {} } },
    ]);
    assert.match(text, /export type AB = \{\n {4}x: unknown;\n\};/);
    assert.match(text, /export type AB2 = /);
    assert.match(text, /export type Topic9 = /);
    assert.match(text, /"a-b": AB;\n {4}"a_b": AB2;/);
    assert.match(text, /schema version 2/);
});

test("from a running broker, then checked by the compiler", () => {
    const out = join(dir, "topics.ts");
    const r = run(["--url", broker.url, "--out", out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /2 topic\(s\) written/);
    const text = readFileSync(out, "utf8");
    assert.match(text, /"room": Room;/);
    assert.match(text, /"sensor-1": Sensor1;/);
    assert.match(text, /"unit-name": unknown;/);

    const api = join(pkg, "dist", "index.js");
    writeFileSync(join(dir, "good.ts"), `
import { connect } from ${JSON.stringify(api)};
import type { TopicMap } from "./topics.js";
export async function f(): Promise<void> {
    const c = await connect<TopicMap>({ url: "ws://x/ws" });
    const rev: number | undefined =
        await c.publish<"room">("room", { text: "hi",
                                          user: { name: "a", id: 1 } });
    void rev;
    await c.subscribe("room", (d) => { const n: unknown = d.data.user.name;
                                       void n; });
    await c.publish("sensor-1", { "value": 1, "unit-name": "C" });
    const v = await c.get("room");
    void v.data?.text;
}
`);
    let t = compile("good.ts");
    assert.equal(t.status, 0, t.stdout + t.stderr);

    writeFileSync(join(dir, "bad.ts"), `
import { connect } from ${JSON.stringify(api)};
import type { TopicMap } from "./topics.js";
export async function f(): Promise<void> {
    const c = await connect<TopicMap>({ url: "ws://x/ws" });
    await c.publish<"room">("room", { text: "hi" });
    await c.publish("nosuch", { a: 1 });
    await c.subscribe("room", (d) => { void d.data.missing; });
    await c.publish("sensor-1", { "value": 1, "unit-name": "C", "x": 2 });
}
`);
    t = compile("bad.ts");
    assert.notEqual(t.status, 0);
    const errs = t.stdout.split("\n").filter((l) => /error TS/.test(l));
    /* each of the four lines is refused */
    assert.equal(errs.length, 4, t.stdout);
    for (const line of [6, 7, 8, 9]) {
        assert.ok(errs.some((e) => e.includes("bad.ts(" + line + ",")),
                  "line " + line + " refused: " + t.stdout);
    }
});

test("from a file, to stdout", () => {
    const f = join(dir, "schemas.json");
    writeFileSync(f, JSON.stringify({
        ticker: { type: "object", required: ["price"],
                  properties: { price: { type: "number" } } },
    }));
    const r = run(["--file", f]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /export type Ticker = \{\n {4}price: number;\n\};/);
    assert.match(r.stdout, /"ticker": Ticker;/);
});

test("bad usage is a clear error", () => {
    let r = run([]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /give either --url or --file/);
    r = run(["--file", join(dir, "missing.json")]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot read .*missing.json/);
    r = run(["--url", "ws://127.0.0.1:1/ws"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /ECONNREFUSED/);
    r = run(["--bogus"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown option "--bogus"/);
});
