// decode.js: the independent decoder of ironbridge's Sparkplug tests. Reads one payload per
// line of stdin (hex), decodes it with npm sparkplug-payload (Eclipse Tahu's JavaScript codec)
// and prints one line of JSON per payload: 64-bit numbers (Long) as decimal strings, so that
// nothing is rounded through a double. A payload it cannot decode prints {"error": "..."}.
"use strict";
const spb = require("sparkplug-payload").get("spBv1.0");
const readline = require("readline");

function plain(v) {
    if (v === null || v === undefined) return v;
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "object" && typeof v.low === "number" && typeof v.high === "number" &&
        typeof v.toString === "function") return v.toString();
    if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString("hex");
    if (Array.isArray(v)) return v.map(plain);
    if (typeof v === "object") {
        const o = {};
        for (const k of Object.keys(v)) o[k] = plain(v[k]);
        return o;
    }
    return v;
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
    line = line.trim();
    if (!line) return;
    try {
        const p = spb.decodePayload(Buffer.from(line, "hex"));
        process.stdout.write(JSON.stringify(plain(p)) + "\n");
    } catch (e) {
        process.stdout.write(JSON.stringify({ error: String(e) }) + "\n");
    }
});
