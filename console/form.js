/*
 * The publish form: one field per member the topic's schema names, or one
 * JSON text for the whole message, and a refusal's errors shown at the
 * fields they point to (their instancePath, a JSON Pointer).
 */

import { clear, h, say } from "./dom.js";

/*
 * The fields of a schema: [{name, required, text, hint}].  text: the
 * field takes plain text (a JSON Schema "string" member); otherwise JSON.
 * null when the schema names no members (the JSON text only).
 */
export function schemaFields(schema, schemaType) {
    if (schema === null || typeof schema !== "object"
        || Array.isArray(schema))
    {
        return null;
    }
    if (schemaType === "json-schema") {
        const props = schema.properties;
        if (props === null || typeof props !== "object"
            || Array.isArray(props) || Object.keys(props).length === 0)
        {
            return null;
        }
        const req = Array.isArray(schema.required) ? schema.required : [];
        return Object.keys(props).map((name) => {
            const p = props[name];
            const type = p && typeof p === "object" ? p.type : undefined;
            return {
                name, required: req.includes(name),
                text: type === "string",
                hint: Array.isArray(type) ? type.join(" or ")
                    : typeof type === "string" ? type : "any JSON value",
            };
        });
    }
    const names = Object.keys(schema);
    if (names.length === 0) {
        return null;
    }
    /* a key-set schema: every key, and only those */
    return names.map((name) => {
        const v = schema[name];
        const nested = v !== null && typeof v === "object"
            && !Array.isArray(v);
        return { name, required: true, text: false,
                 hint: nested ? "an object of the keys "
                     + Object.keys(v).join(", ") + ", or any JSON value "
                     + "but an object" : "any JSON value but an object" };
    });
}

/* the member of the message an error is about, or null */
export function errorField(err, names) {
    let name = null;
    if (typeof err.instancePath === "string" && err.instancePath !== "") {
        name = err.instancePath.split("/")[1]
            .replace(/~1/g, "/").replace(/~0/g, "~");
    } else if (err.keyword === "required") {
        const m = /^property "(.*)" missing$/.exec(String(err.message));
        name = m ? m[1] : null;
    }
    return name !== null && names.includes(name) ? name : null;
}

let formSeq = 0;

export class PublishForm {
    /* root: the <form>; the caller handles its submit */
    constructor(root) {
        this.root = root;
        this.fields = null;
        this.inputs = new Map();
        this.errs = new Map();
        this.seq = ++formSeq;
        this.fieldBox = root.querySelector(".fields");
        this.rawBox = root.querySelector(".raw");
        this.raw = root.querySelector("textarea[name=raw]");
        this.rawErr = root.querySelector(".raw .field-error");
        this.summary = root.querySelector(".form-errors");
        this.useRaw = root.querySelector("input[name=use-raw]");
        this.useRaw.addEventListener("change", () => this.layout());
    }

    setSchema(schema, schemaType) {
        this.fields = schemaFields(schema, schemaType);
        this.inputs.clear();
        this.errs.clear();
        const rows = (this.fields ?? []).map((f) => this.fieldRow(f));
        clear(this.fieldBox, rows);
        this.useRaw.checked = this.fields === null;
        this.useRaw.disabled = this.fields === null;
        this.raw.value = "";
        this.clearErrors();
        this.layout();
    }

    fieldRow(f) {
        const id = "pf" + this.seq + "-" + this.inputs.size;
        const errId = id + "-err";
        const hintId = id + "-hint";
        const input = h("input", {
            id, name: "field", "data-field": f.name, type: "text",
            autocomplete: "off", spellcheck: "false",
            "aria-describedby": hintId + " " + errId,
            "aria-required": f.required ? "true" : false,
            placeholder: f.text ? "text" : "JSON, e.g. 42, \"a\", {}",
        });
        const err = h("p", { id: errId, class: "field-error",
                             hidden: true });
        this.inputs.set(f.name, input);
        this.errs.set(f.name, err);
        return h("div", { class: "field" },
                 h("label", { for: id }, f.name,
                   f.required ? h("span", { class: "req",
                                            text: " (required)" }) : null),
                 input,
                 h("p", { id: hintId, class: "hint",
                          text: (f.text ? "text" : f.hint)
                              + "; leave empty to leave it out" }),
                 err);
    }

    layout() {
        const raw = this.useRaw.checked;
        if (raw && this.fields !== null && this.raw.value.trim() === "") {
            /* carry what the fields hold over to the JSON text */
            try {
                this.raw.value = JSON.stringify(this.fromFields(false),
                                                null, 2);
            } catch {
                /* a field that is not JSON: start from nothing */
            }
        }
        this.fieldBox.hidden = raw;
        this.rawBox.hidden = !raw;
    }

    /* the message, or throws after marking what cannot be read */
    value() {
        this.clearErrors();
        if (this.useRaw.checked) {
            try {
                return JSON.parse(this.raw.value);
            } catch (e) {
                this.mark(this.raw, this.rawErr, "not JSON: " + e.message);
                throw new Error("the message is not JSON");
            }
        }
        return this.fromFields(true);
    }

    fromFields(markBad) {
        const data = {};
        let bad = 0;
        for (const f of this.fields) {
            const input = this.inputs.get(f.name);
            const text = input.value;
            if (text === "") {
                continue;
            }
            if (f.text) {
                data[f.name] = text;
                continue;
            }
            try {
                data[f.name] = JSON.parse(text);
            } catch {
                bad++;
                if (markBad) {
                    this.mark(input, this.errs.get(f.name),
                              "not JSON (write text in quotes: \"text\")");
                }
            }
        }
        if (bad > 0) {
            throw new Error(bad + " field" + (bad > 1 ? "s are" : " is")
                            + " not JSON");
        }
        return data;
    }

    mark(input, errEl, text) {
        input.setAttribute("aria-invalid", "true");
        errEl.textContent = errEl.hidden ? text
                                         : errEl.textContent + "; " + text;
        errEl.hidden = false;
    }

    clearErrors() {
        for (const el of this.root.querySelectorAll("[aria-invalid]")) {
            el.removeAttribute("aria-invalid");
        }
        for (const el of this.root.querySelectorAll(".field-error")) {
            el.textContent = "";
            el.hidden = true;
        }
        say(this.summary, "");
    }

    /*
     * A refusal: each of its errors at its field, the others (and the
     * message) in the form's summary; the first marked field gets focus.
     */
    showRefusal(e) {
        this.clearErrors();
        const names = this.useRaw.checked || this.fields === null ? []
            : this.fields.map((f) => f.name);
        const rest = [];
        let first = null;
        for (const err of Array.isArray(e.errors) ? e.errors : []) {
            const name = errorField(err, names);
            const text = err.message + " (" + err.keyword + ")";
            if (name === null) {
                rest.push((err.instancePath || "the message") + ": " + text);
                continue;
            }
            const input = this.inputs.get(name);
            this.mark(input, this.errs.get(name),
                      (err.instancePath.split("/").length > 2
                       ? err.instancePath + ": " : "") + text);
            first ??= input;
        }
        if (this.useRaw.checked && rest.length > 0) {
            this.mark(this.raw, this.rawErr, rest.join("; "));
            first ??= this.raw;
            rest.length = 0;
        }
        const lines = [String(e.code ?? "") + " " + e.message, ...rest];
        say(this.summary, "Refused: " + lines.join("\n").trim(), "error");
        (first ?? this.summary).focus();
    }
}
