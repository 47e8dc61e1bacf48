// bench/opcua_read_client.js: the baseline beside the gateway in bench/bench_opcua.py: a
// node-opcua client (the test peer's node_modules) that reads the same N nodes at the same
// interval with the same security (Basic256Sha256, SignAndEncrypt), for S seconds, and prints
// one JSON line: values read, reads, CPU seconds, peak RSS, latency from SourceTimestamp to
// receipt (mean, p50, p99 in ms).
//
//   node opcua_read_client.js URL N INTERVAL_MS SECONDS
"use strict";
if (!globalThis.crypto) {
    globalThis.crypto = require("crypto").webcrypto;
}
const {
    OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds,
} = require("node-opcua-client");

const [url, n, intervalMs, seconds] = [process.argv[2], +process.argv[3], +process.argv[4],
    +process.argv[5]];

async function main() {
    const client = OPCUAClient.create({
        securityMode: MessageSecurityMode.SignAndEncrypt,
        securityPolicy: SecurityPolicy.Basic256Sha256,
        endpointMustExist: false,
        connectionStrategy: { maxRetry: 3 },
    });
    await client.connect(url);
    const session = await client.createSession();
    const nodes = [];
    for (let i = 0; i < n; i++) {
        nodes.push({ nodeId: `ns=2;s=R${i}`, attributeId: AttributeIds.Value });
    }
    const lat = [];
    let values = 0, reads = 0, rss = 0, bad = 0;
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    let next = t0;
    while (Date.now() - t0 < seconds * 1000) {
        const dvs = await session.read(nodes, 0);
        const now = Date.now();
        for (const dv of dvs) {
            if (dv.statusCode.value !== 0) {
                bad++;
                continue;
            }
            values++;
            if (dv.sourceTimestamp) lat.push(now - dv.sourceTimestamp.getTime());
        }
        reads++;
        rss = Math.max(rss, process.memoryUsage().rss);
        next += intervalMs;
        const wait = next - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        else next = Date.now();
    }
    const elapsed = (Date.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await session.close();
    await client.disconnect();
    lat.sort((a, b) => a - b);
    const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
    console.log(JSON.stringify({
        seconds: elapsed, values, bad, reads, cpu_s: (cpu.user + cpu.system) / 1e6,
        rss_mib: rss / 1048576,
        latency_ms: { mean: lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null,
                      p50: pct(0.5), p99: pct(0.99) },
    }));
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
