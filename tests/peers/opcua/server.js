// The OPC UA test peer of ironbridge's integration tests: node-opcua's server (pinned in
// package.json) with a test address space in namespace urn:ironbridge:test (ns=1): one
// variable of every scalar built-in type, arrays of numbers and strings, the user "operator"
// with password "s3cret!", any X.509 user certificate, a counter changing every 100 ms, a node
// whose value carries BadDeviceFailure, and a writable Double. Its PKI lives in the directory it
// is given.
//
//   node server.js --port N --pki DIR --port-file FILE [--max-nodes-per-read N] [--ns-shift N]
//                  [--cert FILE --key FILE --app-uri URI]
//
// Writes the port to FILE once it listens; stops on SIGTERM.
"use strict";
// Node 18 (Debian 12's nodejs) has Web Crypto only as require("crypto").webcrypto, not as
// globalThis.crypto, which node-opcua needs for its random numbers.
if (!globalThis.crypto) {
    globalThis.crypto = require("crypto").webcrypto;
}
const path = require("path");
const { OPCUAServer } = require("node-opcua-server");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");
const { Variant, DataType, VariantArrayType } = require("node-opcua-variant");
const { StatusCodes } = require("node-opcua-status-code");
const { MessageSecurityMode, SecurityPolicy } = require("node-opcua-secure-channel");
const { nodesets } = require("node-opcua-nodesets");
const fs = require("fs");

function arg(name, def) {
    const i = process.argv.indexOf("--" + name);
    return i > 0 ? process.argv[i + 1] : def;
}

const port = parseInt(arg("port"), 10);
const pki = arg("pki");
const portFile = arg("port-file");
const maxNodesPerRead = parseInt(arg("max-nodes-per-read", "5"), 10);
// --cert FILE --key FILE --app-uri URI: the server's own certificate (PEM) instead of the one
// node-opcua makes, for the client's certificate checks (test_opcua_browse.py)
// --bench-read N: N Doubles ns=2;s=R<i> whose value (and SourceTimestamp) is made at each read;
// --bench-sub N: N Doubles ns=2;s=S<i>, all changed once a second (bench/bench_opcua.py)
const benchRead = parseInt(arg("bench-read", "0"), 10);
const benchSub = parseInt(arg("bench-sub", "0"), 10);
const certFile = arg("cert");
const ownCert = certFile ? { certificateFile: certFile, privateKeyFile: arg("key"),
                             serverInfo: { applicationUri: arg("app-uri") } } : {};
const nsShift = parseInt(arg("ns-shift", "0"), 10);

// name, DataType, value as node-opcua takes it
const SCALARS = [
    ["Bool", DataType.Boolean, true],
    ["SByte", DataType.SByte, -100],
    ["Byte", DataType.Byte, 200],
    ["Int16", DataType.Int16, -30000],
    ["UInt16", DataType.UInt16, 60000],
    ["Int32", DataType.Int32, -2000000000],
    ["UInt32", DataType.UInt32, 4000000000],
    ["Int64", DataType.Int64, [0xffdfffff, 0xffffffff]],   // -9007199254740993
    ["UInt64", DataType.UInt64, [0xffffffff, 0xffffffff]], // 2^64 - 1
    ["Float", DataType.Float, 123.456],
    ["Double", DataType.Double, 3.141592653589793],
    ["String", DataType.String, "h\u00e9llo w\u00f6rld"],
    ["DateTime", DataType.DateTime, new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678))],
    ["ByteString", DataType.ByteString, Buffer.from([1, 2, 3, 4])],
    ["LocalizedText", DataType.LocalizedText, { locale: "en", text: "Running" }],
    ["Guid", DataType.Guid, "72962b91-fa75-4ae6-8d28-b404dc7daf63"],
];

// --ns-shift N: N other namespaces registered before urn:ironbridge:test, so that its index
// moves (a server restarted with another namespace order; the nsu= tests of mode subscribe).
function registerShiftNamespaces(space, n) {
    for (let i = 0; i < n; i++) {
        space.registerNamespace("urn:ironbridge:shift:" + i);
    }
}

// Arrays for the JSON-array mapping: numbers (one Int64 beyond 2^53) and strings.
function addArrayNodes(ns, folder) {
    const arrays = [
        ["Int32Array", DataType.Int32, Int32Array.from([1, -2, 2147483647])],
        ["DoubleArray", DataType.Double, Float64Array.from([0.5, -1.25, 1e300])],
        ["Int64Array", DataType.Int64, [[0xffdfffff, 0xffffffff], [0, 7]]],
        ["StringArray", DataType.String, ["a", "b\"c", "h\u00e9"]],
    ];
    for (const [name, dataType, value] of arrays) {
        ns.addVariable({
            componentOf: folder, browseName: name, nodeId: "s=" + name, dataType, valueRank: 1,
            accessLevel: "CurrentRead", userAccessLevel: "CurrentRead",
            value: new Variant({ dataType, arrayType: VariantArrayType.Array, value }),
        });
    }
}

async function main() {
    const serverCertificateManager = new OPCUACertificateManager({
        rootFolder: path.join(pki, "server"),
        automaticallyAcceptUnknownCertificate: true,
    });
    await serverCertificateManager.initialize();
    // X.509 user identities: any user certificate is accepted (and kept in pki/user)
    const userCertificateManager = new OPCUACertificateManager({
        rootFolder: path.join(pki, "user"),
        automaticallyAcceptUnknownCertificate: true,
    });
    await userCertificateManager.initialize();
    const server = new OPCUAServer({
        port,
        hostname: "127.0.0.1",
        // 127.0.0.1 in the certificate's subjectAltName: the client checks the endpoint's host
        alternateHostname: ["127.0.0.1"],
        nodeset_filename: [nodesets.standard],
        serverCertificateManager,
        userCertificateManager,
        securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign,
                        MessageSecurityMode.SignAndEncrypt],
        securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256,
                           SecurityPolicy.Aes128_Sha256_RsaOaep,
                           SecurityPolicy.Aes256_Sha256_RsaPss],
        allowAnonymous: true,
        // one user, for the user name and password tests
        userManager: { isValidUser: (user, password) => user === "operator" && password === "s3cret!" },
        serverCapabilities: { operationLimits: { maxNodesPerRead } },
        ...ownCert,
    });
    await server.initialize();
    const space = server.engine.addressSpace;
    registerShiftNamespaces(space, nsShift);
    const ns = space.registerNamespace("urn:ironbridge:test");
    const folder = ns.addFolder(space.rootFolder.objects, { browseName: "Test" });
    for (const [name, dataType, value] of SCALARS) {
        ns.addVariable({
            componentOf: folder, browseName: name, nodeId: "s=" + name, dataType,
            accessLevel: "CurrentRead", userAccessLevel: "CurrentRead", // read-only
            value: new Variant({ dataType, arrayType: VariantArrayType.Scalar, value }),
        });
    }
    let counter = 0;
    const counterVar = ns.addVariable({
        componentOf: folder, browseName: "Counter", nodeId: "s=Counter", dataType: "Int32",
        value: new Variant({ dataType: DataType.Int32, value: 0 }),
    });
    setInterval(() => {
        counter += 1;
        counterVar.setValueFromSource(new Variant({ dataType: DataType.Int32, value: counter }));
    }, 100);
    const broken = ns.addVariable({
        componentOf: folder, browseName: "Broken", nodeId: "s=Broken", dataType: "Double",
        value: new Variant({ dataType: DataType.Double, value: 0 }),
    });
    broken.setValueFromSource(new Variant({ dataType: DataType.Double, value: 0 }),
                              StatusCodes.BadDeviceFailure);
    // two browse names that make the same tag name ("Dup_A") in the browse tool's output
    for (const [browseName, id] of [["Dup/A", "DupSlash"], ["Dup_A", "DupUnderscore"]]) {
        ns.addVariable({
            componentOf: folder, browseName, nodeId: "s=" + id, dataType: "Double",
            value: new Variant({ dataType: DataType.Double, value: 2.5 }),
        });
    }
    ns.addVariable({
        componentOf: folder, browseName: "Setpoint", nodeId: "s=Setpoint", dataType: "Double",
        accessLevel: "CurrentRead | CurrentWrite", userAccessLevel: "CurrentRead | CurrentWrite",
        value: new Variant({ dataType: DataType.Double, value: 1.5 }),
    });
    addBench(ns, space);
    addArrayNodes(ns, folder);
    await server.start();
    fs.writeFileSync(portFile + ".tmp", String(port));
    fs.renameSync(portFile + ".tmp", portFile);
    console.log("ready on " + server.getEndpointUrl());
    const stop = async () => {
        await server.shutdown(0);
        process.exit(0);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

function addBench(ns, space) {
    if (benchRead > 0) {
        const f = ns.addFolder(space.rootFolder.objects, { browseName: "BenchRead" });
        for (let i = 0; i < benchRead; i++) {
            ns.addVariable({
                componentOf: f, browseName: "R" + i, nodeId: "s=R" + i, dataType: "Double",
                value: { get: () => new Variant({ dataType: DataType.Double, value: Date.now() % 1e6 + i }) },
            });
        }
    }
    if (benchSub > 0) {
        const f = ns.addFolder(space.rootFolder.objects, { browseName: "BenchSub" });
        const vars = [];
        for (let i = 0; i < benchSub; i++) {
            vars.push(ns.addVariable({
                componentOf: f, browseName: "S" + i, nodeId: "s=S" + i, dataType: "Double",
                value: new Variant({ dataType: DataType.Double, value: 0 }),
            }));
        }
        let tick = 0;
        setInterval(() => {
            tick += 1;
            for (const v of vars) {
                v.setValueFromSource(new Variant({ dataType: DataType.Double, value: tick }));
            }
        }, 1000);
    }
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
