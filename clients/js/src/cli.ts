#!/usr/bin/env node
/*
 * dataloom-types: TypeScript types for the topics of a running broker
 * (its listTopics) or of a JSON file.
 *
 *   dataloom-types --url ws://host/ws [--api-key K] [--client-id C] \
 *                  [--out topics.ts]
 *   dataloom-types --file schemas.json [--out topics.ts]
 */

import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "./client.js";
import { DataLoomError } from "./errors.js";
import { generate, topicsFromJson } from "./typegen.js";
import type { TopicInfo } from "./types.js";

const USAGE = "usage: dataloom-types (--url URL [--api-key KEY] "
    + "[--client-id ID] [--timeout MS] | --file FILE) [--out FILE]\n";

function fail(msg: string, status = 1): never {
    process.stderr.write("dataloom-types: " + msg + "\n");
    process.exit(status);
}

function parse(argv: string[]): Record<string, string> {
    const known = ["--url", "--api-key", "--client-id", "--file", "--out",
                   "--timeout"];
    const args: Record<string, string> = {};
    for (let i = 0; i < argv.length; i++) {
        let a = argv[i];
        if (a === "-h" || a === "--help") {
            process.stdout.write(USAGE);
            process.exit(0);
        }
        let v: string | undefined;
        const eq = a.indexOf("=");
        if (a.startsWith("--") && eq > 0) {
            v = a.slice(eq + 1);
            a = a.slice(0, eq);
        }
        if (!known.includes(a)) {
            fail("unknown option \"" + a + "\"\n" + USAGE, 2);
        }
        if (v === undefined) {
            v = argv[++i];
            if (v === undefined) {
                fail(a + " needs a value\n" + USAGE, 2);
            }
        }
        args[a.slice(2)] = v;
    }
    if ((args.url === undefined) === (args.file === undefined)) {
        fail("give either --url or --file\n" + USAGE, 2);
    }
    return args;
}

async function main(): Promise<void> {
    const args = parse(process.argv.slice(2));
    let topics: TopicInfo[];
    let source: string;

    if (args.file !== undefined) {
        let value: unknown;
        try {
            value = JSON.parse(readFileSync(args.file, "utf8"));
        } catch (e) {
            fail("cannot read " + args.file + ": " + (e as Error).message);
        }
        try {
            topics = topicsFromJson(value);
        } catch (e) {
            fail(args.file + ": " + (e as Error).message);
        }
        source = args.file;
    } else {
        const timeout = args.timeout === undefined ? 10000
            : Number(args.timeout);
        if (!Number.isInteger(timeout) || timeout <= 0) {
            fail("--timeout must be a positive number of ms", 2);
        }
        const client = await connect({
            url: args.url, apiKey: args["api-key"],
            clientId: args["client-id"], reconnect: false,
            timeoutMs: timeout,
        }).catch((e: DataLoomError) => fail(e.message));
        try {
            topics = await client.listTopics();
        } catch (e) {
            fail("listTopics: " + (e as Error).message);
        } finally {
            await client.close();
        }
        source = args.url;
    }

    const text = generate(topics, source);
    if (args.out === undefined || args.out === "-") {
        process.stdout.write(text);
    } else {
        writeFileSync(args.out, text);
        process.stderr.write("dataloom-types: " + topics.length
            + " topic(s) written to " + args.out + "\n");
    }
}

main().catch((e) => fail(String(e && e.stack || e)));
