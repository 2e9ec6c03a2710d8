/* Small DOM helpers of the console: no framework, no inline HTML. */

export const byId = (id) => document.getElementById(id);

/*
 * h("li", {class: "x", "aria-label": "y", onclick: fn}, "text", child)
 * makes an element; props starting with "on" are listeners, "text" sets
 * textContent, others are attributes (false and null leave them out).
 */
export function h(tag, props = {}, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
        if (v === false || v === null || v === undefined) {
            continue;
        }
        if (k.startsWith("on") && typeof v === "function") {
            el.addEventListener(k.slice(2), v);
        } else if (k === "text") {
            el.textContent = v;
        } else {
            el.setAttribute(k, v === true ? "" : String(v));
        }
    }
    for (const kid of kids.flat()) {
        if (kid !== null && kid !== undefined && kid !== false) {
            el.append(kid instanceof Node ? kid : String(kid));
        }
    }
    return el;
}

export function clear(el, ...kids) {
    el.replaceChildren(...kids.flat().filter((k) => k !== null
                                             && k !== undefined));
}

export function pretty(v) {
    return JSON.stringify(v, null, 2);
}

/* a ts in ms since 1970 as UTC ISO 8601, "" for none */
export function isoTime(ms) {
    return typeof ms === "number" && ms > 0 ? new Date(ms).toISOString()
                                            : "";
}

/* a <time> element for a ts */
export function timeEl(ms) {
    const iso = isoTime(ms);
    return iso ? h("time", { datetime: iso, text: iso }) : h("span");
}

/* a <pre> with a JSON value, labelled for assistive technology */
export function jsonBlock(v, label) {
    return h("pre", { class: "json", tabindex: 0, "aria-label": label,
                      text: pretty(v) });
}

/* sets a message in a live region; kind "error" or "ok" or "" */
export function say(el, text, kind = "") {
    el.textContent = text;
    el.dataset.kind = kind;
    el.hidden = text === "";
}

/* the text of any error for a person */
export function errorText(e) {
    if (e && typeof e === "object" && "message" in e) {
        /* the server's codes are numbers; the client's own say nothing */
        const code = typeof e.code === "number" ? e.code + " " : "";
        return code + e.message;
    }
    return String(e);
}
