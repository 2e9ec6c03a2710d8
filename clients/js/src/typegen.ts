/*
 * TypeScript types from topic schemas.  A key-set schema (the example
 * object of docs/protocol.md section 7) gives an object type with exactly
 * its keys: `unknown` for each value, or a nested object type where the
 * schema has an object.  A JSON Schema gives the type its common keywords
 * describe; a keyword it does not map gives `unknown`.
 */

import type { TopicInfo } from "./types.js";

const TYPE_NAMES = new Set(["string", "number", "integer", "boolean",
                            "null", "array", "object"]);

const KEYWORDS = new Set([
    "$schema", "$id", "$defs", "definitions", "$ref", "$anchor", "$comment",
    "title", "description", "default", "examples", "deprecated", "readOnly",
    "writeOnly", "type", "enum", "const", "properties", "required",
    "additionalProperties", "patternProperties", "propertyNames",
    "minProperties", "maxProperties", "items", "prefixItems", "contains",
    "minItems", "maxItems", "uniqueItems", "minContains", "maxContains",
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "anyOf", "oneOf",
    "allOf", "not", "if", "then", "else", "dependentRequired",
    "dependentSchemas", "unevaluatedProperties", "unevaluatedItems",
    "contentMediaType", "contentEncoding",
]);

function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

/*
 * A schema is taken as a JSON Schema when it says so ("$schema"), or when
 * its "type" is a JSON Schema type name (or a list of them) and every key
 * is a JSON Schema keyword; otherwise it is a key-set schema.  A
 * `schemaType` beside the schema, when the server sends one, decides.
 */
export function isJsonSchema(schema: unknown, schemaType?: unknown): boolean {
    if (typeof schemaType === "string") {
        return /json/i.test(schemaType);
    }
    if (!isObject(schema)) {
        return false;
    }
    if (typeof schema.$schema === "string") {
        return true;
    }
    const t = schema.type;
    const typed = typeof t === "string" ? TYPE_NAMES.has(t)
        : Array.isArray(t) && t.length > 0
          && t.every((x) => typeof x === "string" && TYPE_NAMES.has(x));
    return typed && Object.keys(schema).every((k) => KEYWORDS.has(k));
}

function key(k: string): string {
    return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? k : JSON.stringify(k);
}

function indent(depth: number): string {
    return "    ".repeat(depth);
}

export function keySetType(schema: unknown, depth = 0): string {
    if (!isObject(schema)) {
        return "unknown";
    }
    const keys = Object.keys(schema);
    if (keys.length === 0) {
        return "Record<string, never>";
    }
    const lines = keys.map((k) => indent(depth + 1) + key(k) + ": "
        + (isObject(schema[k]) ? keySetType(schema[k], depth + 1)
                               : "unknown") + ";");
    return "{\n" + lines.join("\n") + "\n" + indent(depth) + "}";
}

function literal(v: unknown): string {
    if (v === null || typeof v === "string" || typeof v === "number"
        || typeof v === "boolean")
    {
        return JSON.stringify(v);
    }
    return "unknown";
}

function union(parts: string[]): string {
    const uniq = [...new Set(parts)];
    if (uniq.includes("unknown")) {
        return "unknown";
    }
    if (uniq.length === 0) {
        return "never";
    }
    return uniq.length === 1 ? uniq[0]
        : uniq.map((p) => p.includes(" & ") ? "(" + p + ")" : p).join(" | ");
}

function resolveRef(root: Record<string, unknown>, ref: string): unknown {
    if (ref === "#") {
        return root;
    }
    if (!ref.startsWith("#/")) {
        return undefined;
    }
    let node: unknown = root;
    for (const raw of ref.slice(2).split("/")) {
        const part = decodeURIComponent(raw).replace(/~1/g, "/")
            .replace(/~0/g, "~");
        if (!isObject(node)) {
            return undefined;
        }
        node = node[part];
    }
    return node;
}

export function jsonSchemaType(schema: unknown, root?: unknown, depth = 0,
                               refs = 0): string
{
    if (schema === true || schema === undefined) {
        return "unknown";
    }
    if (schema === false) {
        return "never";
    }
    if (!isObject(schema)) {
        return "unknown";
    }
    const top = isObject(root) ? root : schema;

    if (typeof schema.$ref === "string") {
        const target = refs < 8 ? resolveRef(top, schema.$ref) : undefined;
        return target === undefined ? "unknown"
            : jsonSchemaType(target, top, depth, refs + 1);
    }
    if ("const" in schema) {
        return literal(schema.const);
    }
    if (Array.isArray(schema.enum)) {
        return union(schema.enum.map(literal));
    }
    if (Array.isArray(schema.anyOf) || Array.isArray(schema.oneOf)) {
        const alts = (schema.anyOf ?? schema.oneOf) as unknown[];
        return union(alts.map((s) => jsonSchemaType(s, top, depth, refs)));
    }
    if (Array.isArray(schema.allOf)) {
        const parts = schema.allOf.map((s) =>
            jsonSchemaType(s, top, depth, refs)).filter((p) => p !== "unknown");
        return parts.length === 0 ? "unknown"
            : parts.map((p) => p.includes("|") ? "(" + p + ")" : p)
                   .join(" & ");
    }

    let types: string[];
    if (typeof schema.type === "string") {
        types = [schema.type];
    } else if (Array.isArray(schema.type)) {
        types = schema.type.filter((t): t is string => typeof t === "string");
    } else if (isObject(schema.properties)) {
        types = ["object"];
    } else if (schema.items !== undefined
               || schema.prefixItems !== undefined)
    {
        types = ["array"];
    } else {
        return "unknown";
    }

    return union(types.map((t) => {
        switch (t) {
        case "string":
            return "string";
        case "number":
        case "integer":
            return "number";
        case "boolean":
            return "boolean";
        case "null":
            return "null";
        case "array":
            return arrayType(schema, top, depth, refs);
        case "object":
            return objectType(schema, top, depth, refs);
        default:
            return "unknown";
        }
    }));
}

function arrayType(schema: Record<string, unknown>, top: unknown,
                   depth: number, refs: number): string
{
    if (Array.isArray(schema.prefixItems)) {
        const items = schema.prefixItems.map((s) =>
            jsonSchemaType(s, top, depth, refs));
        const rest = schema.items === false ? ""
            : ", ...(" + jsonSchemaType(schema.items, top, depth, refs)
              + ")[]";
        return "[" + items.join(", ") + rest + "]";
    }
    const item = jsonSchemaType(schema.items, top, depth, refs);
    return /^[A-Za-z]+$/.test(item) ? item + "[]" : "(" + item + ")[]";
}

function objectType(schema: Record<string, unknown>, top: unknown,
                    depth: number, refs: number): string
{
    const props = isObject(schema.properties) ? schema.properties : {};
    const required = new Set(Array.isArray(schema.required)
        ? schema.required.filter((r) => typeof r === "string") : []);
    const extra = schema.additionalProperties;
    const lines: string[] = [];

    for (const k of Object.keys(props)) {
        lines.push(indent(depth + 1) + key(k) + (required.has(k) ? "" : "?")
            + ": " + jsonSchemaType(props[k], top, depth + 1, refs) + ";");
    }
    /* required names without a property schema are still required */
    for (const k of required) {
        if (!(k in props)) {
            lines.push(indent(depth + 1) + key(k) + ": unknown;");
        }
    }
    if (lines.length === 0) {
        if (extra === false) {
            return "Record<string, never>";
        }
        return "Record<string, " + (isObject(extra)
            ? jsonSchemaType(extra, top, depth, refs) : "unknown") + ">";
    }
    if (extra !== false && extra !== undefined && lines.length > 0
        && isObject(extra))
    {
        lines.push(indent(depth + 1) + "[key: string]: unknown;");
    }
    return "{\n" + lines.join("\n") + "\n" + indent(depth) + "}";
}

/* a TypeScript type for one topic's schema */
export function schemaType(schema: unknown, kind?: unknown): string {
    return isJsonSchema(schema, kind) ? jsonSchemaType(schema)
                                      : keySetType(schema);
}

export function typeName(topic: string, taken: Set<string>): string {
    let name = topic.split(/[^A-Za-z0-9]+/).filter((p) => p !== "")
        .map((p) => p[0].toUpperCase() + p.slice(1)).join("");
    if (name === "" || /^[0-9]/.test(name)) {
        name = "Topic" + name;
    }
    if (name === "TopicMap") {
        name = "TopicMapTopic";
    }
    let n = name;
    for (let i = 2; taken.has(n); i++) {
        n = name + i;
    }
    taken.add(n);
    return n;
}

/* the module text: one type per topic and a TopicMap naming them all */
export function generate(topics: TopicInfo[], source = ""): string {
    const taken = new Set<string>();
    const sorted = [...topics].sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    const out: string[] = [
        "/*",
        " * Data Loom topic types, generated by dataloom-types"
            + (source ? " from " + source : "") + ".",
        " * Do not edit: generate again when a schema changes.",
        " */",
        "",
    ];
    const map: string[] = [];

    for (const t of sorted) {
        const name = typeName(t.name, taken);
        const s = t.schema as Record<string, unknown> | null;
        const version = isObject(s) && typeof s.version === "number"
            ? s.version : undefined;
        const body = isObject(s) && "schema" in s ? s.schema : s;
        out.push("/* topic " + JSON.stringify(t.name).replace(/\*\//g, "*\\/")
            + (version !== undefined ? ", schema version " + version : "")
            + " */");
        out.push("export type " + name + " = "
            + schemaType(body, isObject(s) ? s.schemaType : undefined) + ";");
        out.push("");
        map.push("    " + JSON.stringify(t.name) + ": " + name + ";");
    }
    out.push("export type TopicMap = {");
    out.push(...map);
    out.push("};");
    out.push("");
    return out.join("\n");
}

/*
 * Topics from a file: the `data` of a listTopics answer (a list of
 * {name, schema: {version, schema}}), or an object from names to schemas.
 */
export function topicsFromJson(value: unknown): TopicInfo[] {
    if (Array.isArray(value)) {
        return value.map((t, i) => {
            if (!isObject(t) || typeof t.name !== "string") {
                throw new Error("entry " + i + " has no \"name\" string");
            }
            const s = isObject(t.schema) && "schema" in t.schema ? t.schema
                : { version: 0, schema: t.schema };
            return { name: t.name, schema: s as TopicInfo["schema"] };
        });
    }
    if (isObject(value)) {
        return Object.keys(value).map((name) => ({
            name, schema: { version: 0, schema: value[name] },
        }));
    }
    throw new Error("expected a list of topics or an object of schemas");
}
