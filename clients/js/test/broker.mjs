/*
 * A real broker for the tests: redis-server and nginx loading the module,
 * each in a temporary directory on a free port (as
 * tests/integration/conftest.py does).  Paths come from LOOM_MODULE,
 * LOOM_NGINX and LOOM_REDIS_SERVER when set.
 */

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync }
    from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..", "..");

export const MODULE = process.env.LOOM_MODULE
    ?? join(root, "build", "default", "ngx_http_loom_module.so");
const NGINX = process.env.LOOM_NGINX ?? "/usr/sbin/nginx";
const REDIS = process.env.LOOM_REDIS_SERVER ?? "/usr/bin/redis-server";

const BAD_LOG = /\[(alert|crit|emerg)\]/;

export function freePort() {
    return new Promise((res, rej) => {
        const s = createServer();
        s.once("error", rej);
        s.listen(0, "127.0.0.1", () => {
            const { port } = s.address();
            s.close(() => res(port));
        });
    });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(pred, what, timeoutMs = 10000) {
    const end = Date.now() + timeoutMs;
    let delay = 5;
    for (;;) {
        const v = await pred();
        if (v) {
            return v;
        }
        if (Date.now() > end) {
            throw new Error("timed out waiting for " + what);
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 100);
    }
}

function portOpen(port) {
    return new Promise((res) => {
        const c = tcpConnect(port, "127.0.0.1");
        c.once("connect", () => { c.destroy(); res(true); });
        c.once("error", () => res(false));
    });
}

function alive(pid) {
    try {
        process.kill(pid, 0);
    } catch {
        return false;
    }
    try {
        const stat = readFileSync("/proc/" + pid + "/stat", "utf8");
        return stat.split(") ")[1][0] !== "Z";
    } catch {
        return false;
    }
}

function children(pid) {
    const r = spawnSync("ps", ["-o", "pid=", "--ppid", String(pid)],
                        { encoding: "utf8" });
    return r.stdout.split("\n").map((l) => parseInt(l, 10))
        .filter((p) => p > 0 && alive(p));
}

export class Nginx {
    /*
     * location: more lines for the loom location; server: more lines
     * (locations) for the server block
     */
    constructor(dir, redisPort,
                { location = "", server = "", workers = 1 } = {})
    {
        this.dir = dir;
        this.redisPort = redisPort;
        this.location = location;
        this.server = server;
        this.workers = workers;
        this.master = null;
        mkdirSync(join(dir, "tmp"), { recursive: true });
    }

    get url() {
        return "ws://127.0.0.1:" + this.port + "/ws";
    }

    async start({ waitRedis = true } = {}) {
        this.port ??= await freePort();
        this.conf = join(this.dir, "nginx.conf");
        const p = this.dir;
        writeFileSync(this.conf, `
load_module ${MODULE};
worker_processes ${this.workers};
error_log ${p}/error.log info;
pid ${p}/nginx.pid;
events { worker_connections 1024; }
http {
    access_log ${p}/access.log;
    client_body_temp_path ${p}/tmp;
    proxy_temp_path ${p}/tmp;
    fastcgi_temp_path ${p}/tmp;
    uwsgi_temp_path ${p}/tmp;
    scgi_temp_path ${p}/tmp;
    loom_redis 127.0.0.1:${this.redisPort};
    server {
        listen 127.0.0.1:${this.port};
        location = /ws { loom; ${this.location} }
        location = /status { loom_status; }
        ${this.server}
    }
}
`);
        const r = spawnSync(NGINX, ["-p", this.dir, "-c", this.conf,
                                    "-e", join(this.dir, "error.log")],
                            { encoding: "utf8" });
        if (r.status !== 0) {
            throw new Error("nginx did not start: " + r.stderr);
        }
        this.master = await waitFor(() => {
            try {
                return parseInt(readFileSync(join(this.dir, "nginx.pid"),
                                             "utf8"), 10) || null;
            } catch {
                return null;
            }
        }, "the nginx pid file");
        await waitFor(() => portOpen(this.port), "nginx to listen");
        if (waitRedis) {
            await waitFor(() => this.redisUp(), "the loom redis links");
        }
        return this;
    }

    async redisUp() {
        try {
            const res = await fetch("http://127.0.0.1:" + this.port
                                    + "/status");
            const st = await res.json();
            const ws = st.redis.workers;
            return ws.length >= this.workers && ws.every((w) =>
                w.redis_command === "up" && w.redis_subscriber === "up");
        } catch {
            return false;
        }
    }

    /* nginx dies at once (SIGKILL): connections break without a close */
    async kill() {
        if (this.master && alive(this.master)) {
            const pids = children(this.master);
            process.kill(this.master, "SIGKILL");
            for (const pid of pids) {
                try {
                    process.kill(pid, "SIGKILL");
                } catch { /* gone already */ }
            }
            await waitFor(() => !alive(this.master)
                          && pids.every((p) => !alive(p)), "nginx to die");
        }
        rmSync(join(this.dir, "nginx.pid"), { force: true });
        this.master = null;
    }

    async stop() {
        if (this.master && alive(this.master)) {
            process.kill(this.master, "SIGQUIT");
            await waitFor(() => !alive(this.master), "nginx to quit", 20000);
        }
        this.master = null;
    }

    badLogLines() {
        try {
            return readFileSync(join(this.dir, "error.log"), "utf8")
                .split("\n").filter((l) => BAD_LOG.test(l));
        } catch {
            return [];
        }
    }
}

/* one redis-server and one or more nginx nodes sharing it */
export class Broker {
    constructor(opts = {}) {
        this.dir = mkdtempSync(join(tmpdir(), "loom-js-"));
        this.opts = opts;
        this.redis = null;
        this.nodes = [];
    }

    get url() {
        return this.nodes[0].url;
    }

    get nginx() {
        return this.nodes[0];
    }

    async start() {
        this.redisPort = await freePort();
        const rdir = join(this.dir, "redis");
        mkdirSync(rdir);
        this.redis = spawn(REDIS, [
            "--port", String(this.redisPort), "--bind", "127.0.0.1",
            "--dir", rdir, "--save", "", "--appendonly", "no",
            "--logfile", join(rdir, "redis.log"),
        ], { stdio: "ignore" });
        await waitFor(() => portOpen(this.redisPort), "redis to listen");
        await this.addNode(this.opts);
        return this;
    }

    async addNode(opts = {}) {
        const n = new Nginx(join(this.dir, "nginx" + this.nodes.length),
                            this.redisPort, opts);
        this.nodes.push(n);
        return n.start();
    }

    /* stops everything; returns the [alert], [crit], [emerg] log lines */
    async stop() {
        const bad = [];
        for (const n of this.nodes) {
            await n.stop();
            bad.push(...n.badLogLines());
        }
        if (this.redis && this.redis.exitCode === null) {
            const gone = new Promise((r) => this.redis.once("exit", r));
            this.redis.kill("SIGTERM");
            await gone;
        }
        if (!process.env.LOOM_KEEP_TEMP) {
            rmSync(this.dir, { recursive: true, force: true });
        }
        return bad;
    }
}

export async function startBroker(opts) {
    return new Broker(opts).start();
}

/* true when the server accepts the dataloom.v2 subprotocol */
export async function speaksV2(url, connect) {
    const c = await connect({ url, reconnect: false });
    const v2 = c.v2;
    await c.close();
    return v2;
}

export const V2_SKIP = "the server did not accept the dataloom.v2 "
    + "subprotocol (its 101 names none): revisions are not in this build";
