/*
 * What the browser tests share: a real broker (redis-server and nginx
 * loading the module, clients/js/test/broker.mjs) whose server block can
 * serve pages too, a headless Chromium driven by puppeteer-core, pages
 * that fail their test on a script error, and screenshots.
 *
 *   LOOM_CHROMIUM     the browser (default /usr/bin/chromium, Debian's)
 *   LOOM_ARTEFACTS    where screenshots go (default build/browser)
 *   LOOM_CONSOLE_DIR  the assembled console (default build/console)
 *
 * Nothing here downloads a browser: puppeteer-core never does, and only
 * the executable named above is started.
 */

import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";
import { startBroker, waitFor } from "../../clients/js/test/broker.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "..", "..");
export const CHROMIUM = process.env.LOOM_CHROMIUM ?? "/usr/bin/chromium";
export const ARTEFACTS = resolve(process.env.LOOM_ARTEFACTS
                                 ?? join(ROOT, "build", "browser"));
export const CONSOLE_DIR = resolve(process.env.LOOM_CONSOLE_DIR
                                   ?? join(ROOT, "build", "console"));

export { waitFor };

/*
 * A static location for a directory, with the types a page needs (the
 * test nginx.conf includes no mime.types) and a policy that lets the page
 * load nothing from anywhere but this server.
 */
export function staticLocation(prefix, dir) {
    return `
        location ${prefix} {
            alias ${dir}/;
            index index.html;
            types {
                text/html html;
                text/css css;
                image/svg+xml svg;
                text/javascript js mjs;
            }
            add_header Content-Security-Policy
                       "default-src 'self'; connect-src 'self'" always;
            add_header X-Content-Type-Options nosniff always;
        }`;
}

/* a broker whose server also serves the console at /console/ */
export function startConsoleBroker({ location = "", server = "" } = {}) {
    return startBroker({
        location,
        server: staticLocation("/console/", CONSOLE_DIR) + server,
    });
}

export async function launchBrowser() {
    const args = ["--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--no-default-browser-check",
                  "--disable-extensions", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"];
    if (process.getuid && process.getuid() === 0) {
        /* Chromium's sandbox refuses to run as root */
        args.push("--no-sandbox");
    }
    return puppeteer.launch({
        executablePath: CHROMIUM, headless: true, args,
        defaultViewport: { width: 1280, height: 900 },
        timeout: 30000,
    });
}

/*
 * A new page in its own context (no storage shared with other tests).
 * page.problems collects uncaught exceptions and console errors;
 * page.requests every URL it asked for.
 */
export async function newPage(browser) {
    const ctx = await browser.createBrowserContext();
    const page = await ctx.newPage();
    page.problems = [];
    page.requests = [];
    page.on("pageerror", (e) => page.problems.push("exception: "
                                                   + e.message));
    page.on("console", (m) => {
        /* a failed load is told with its URL below */
        if (m.type() === "error"
            && !m.text().startsWith("Failed to load resource"))
        {
            page.problems.push("console: " + m.text());
        }
    });
    page.on("response", (r) => {
        if (r.status() >= 400) {
            page.problems.push("http " + r.status() + " " + r.url());
        }
    });
    page.on("request", (r) => page.requests.push(r.url()));
    page.setDefaultTimeout(10000);
    page.done = () => ctx.close();
    return page;
}

let told = false;

/* a full-page screenshot, ARTEFACTS/<name>.png */
export async function shot(page, name) {
    mkdirSync(ARTEFACTS, { recursive: true });
    if (!told) {
        told = true;
        console.log("# screenshots in " + ARTEFACTS);
    }
    const file = join(ARTEFACTS, name.replace(/[^A-Za-z0-9_.-]/g, "_")
                      + ".png");
    await page.screenshot({ path: file, fullPage: true });
    return file;
}

/* the text of the element, "" when there is none */
export function textOf(page, selector) {
    return page.$eval(selector, (el) => el.textContent)
        .catch(() => "");
}

/* waits until the element's text satisfies pred (a RegExp or function) */
export async function waitText(page, selector, pred, what) {
    const test = pred instanceof RegExp ? (t) => pred.test(t) : pred;
    let last = "";
    try {
        await waitFor(async () => {
            last = await textOf(page, selector);
            return test(last);
        }, what ?? selector, 10000);
    } catch (e) {
        throw new Error((what ?? selector) + ": still \"" + last + "\"");
    }
    return last;
}

/* types into a field, replacing what it held */
export async function fill(page, selector, text) {
    await page.$eval(selector, (el) => { el.value = ""; });
    if (text !== "") {
        await page.type(selector, text);
    }
}

/* sets a field's value at once (date inputs, long texts) */
export async function setValue(page, selector, value) {
    await page.$eval(selector, (el, v) => {
        el.value = v;
        el.dispatchEvent(new Event("input", { bubbles: true }));
        el.dispatchEvent(new Event("change", { bubbles: true }));
    }, value);
}

let axeSource = null;

/*
 * An accessibility audit of the page as it is (axe-core, the rules of
 * WCAG 2.1 A and AA): [{rule, impact, help, targets}], [] when clean.
 */
export async function audit(page) {
    if (axeSource === null) {
        const require = createRequire(import.meta.url);
        axeSource = readFileSync(require.resolve("axe-core/axe.min.js"),
                                 "utf8");
    }
    if (!await page.evaluate(() => typeof window.axe === "object")) {
        await page.evaluate(axeSource);
    }
    return page.evaluate(async () => {
        const r = await window.axe.run(document, {
            runOnly: { type: "tag",
                       values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
            resultTypes: ["violations"],
        });
        return r.violations.map((v) => ({
            rule: v.id, impact: v.impact, help: v.help,
            targets: v.nodes.map((n) => n.target.join(" ")),
        }));
    });
}
