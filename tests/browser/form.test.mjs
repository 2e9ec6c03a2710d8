/*
 * The pure part of the publish form (console/form.js), in Node: which
 * fields a schema gives, and which field an error of a refusal is about.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { errorField, schemaFields } from "../../console/form.js";

test("a key-set schema: every key, each a JSON value", () => {
    const f = schemaFields({ a: null, b: { c: 1 } }, "keys");
    assert.deepEqual(f.map((x) => [x.name, x.required, x.text]),
                     [["a", true, false], ["b", true, false]]);
    assert.match(f[1].hint, /keys c/);
    assert.equal(schemaFields({}, "keys"), null);
    assert.equal(schemaFields(null, "keys"), null);
});

test("a JSON Schema: its properties; strings as text", () => {
    const f = schemaFields({
        type: "object", required: ["s"],
        properties: { s: { type: "string" }, n: { type: ["integer",
                                                          "null"] },
                      any: true },
    }, "json-schema");
    assert.deepEqual(f.map((x) => [x.name, x.required, x.text, x.hint]),
                     [["s", true, true, "string"],
                      ["n", false, false, "integer or null"],
                      ["any", false, false, "any JSON value"]]);
    /* no properties: the JSON text only */
    assert.equal(schemaFields({ type: "array" }, "json-schema"), null);
    assert.equal(schemaFields(true, "json-schema"), null);
});

test("the field of an error", () => {
    const names = ["a", "x/y", "t~n"];
    const at = (instancePath, keyword = "type", message = "m") =>
        errorField({ instancePath, keyword, message }, names);
    assert.equal(at("/a"), "a");
    assert.equal(at("/a/0/b"), "a");
    assert.equal(at("/x~1y"), "x/y");
    assert.equal(at("/t~0n"), "t~n");
    assert.equal(at("/other"), null);
    assert.equal(at(""), null);
    assert.equal(at("", "required", "property \"a\" missing"), "a");
    assert.equal(at("", "required", "property \"zz\" missing"), null);
    /* a required failure inside a member is about that member */
    assert.equal(at("/a", "required", "property \"q\" missing"), "a");
});
