"""bench/peer_nodered.py: the Node-RED peer of bench/run.py --peers: writes a Node-RED settings
file and a flow generated from a workload definition into a temp dir, and gives the command that
runs it (Node-RED and node-red-contrib-modbus from bench/peers/node_modules, installed by
bench/peers/install.sh).

The flow is what a Node-RED user would build for the same job, one chain per device:
inject (repeat = the workload's interval) -> function "plan" (the device's registers as
contiguous reads of up to 125, as many as the gateway's planner needs for a dense map) ->
modbus-flex-getter (one modbus-client per device, one TCP connection each) -> function "record"
(collects a poll's reads, decodes each tag as the gateway does: uint16, float32 CDAB, the clock
as two uint32, and builds a record object shaped like the gateway's batch layout: seq, device,
ts, values {name: {v, q, ts}}) -> mqtt out (QoS and broker as the gateway's; mqtt out turns the
object into JSON). So the same subscriber counts values, checks quality and finds lost records
from the seq. Loopback only; no editor, no telemetry, no projects, no update check.
"""

import json
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent / "peers"
MAX_REGS = 125  # registers per Modbus read (the protocol's limit)

PLAN_JS = """\
const p = (context.get('p') || 0) + 1;
context.set('p', p);
return [@BLOCKS@.map(b => ({poll: p, payload: {fc: 3, unitid: 1, address: b[0], quantity: b[1]}}))];
"""

# One record per complete poll; a poll whose reads did not all come back is forgotten once 20
# later polls have started (its record is never sent: the subscriber counts it as lost).
RECORD_JS = """\
let polls = context.get('polls');
if (!polls) { polls = new Map(); context.set('polls', polls); }
let e = polls.get(msg.poll);
if (!e) { e = {n: 0, regs: new Array(@NREGS@)}; polls.set(msg.poll, e); }
const a = msg.modbusRequest.address, d = msg.payload;
for (let i = 0; i < d.length; i++) e.regs[a + i] = d[i];
if (++e.n < @NBLOCKS@) {
    for (const [k, v] of polls) if (k < msg.poll - 20) polls.delete(k);
    return null;
}
polls.delete(msg.poll);
const r = e.regs, ts = Date.now(), seq = (global.get('seq') || 0) + 1;
global.set('seq', seq);
const values = {
    clk_hi: {v: ((r[0] << 16) | r[1]) >>> 0, q: 'good', ts: ts},
    clk_lo: {v: ((r[2] << 16) | r[3]) >>> 0, q: 'good', ts: ts},
};
const buf = Buffer.alloc(4);
for (let i = 0; i < @NTAGS@; i++) {
    const at = 4 + i * @STRIDE@;
    let v;
    if (@FLOAT@) { buf.writeUInt16BE(r[at + 1], 0); buf.writeUInt16BE(r[at], 2); v = buf.readFloatBE(0); }
    else v = r[at];
    values['t' + i] = {v: v, q: 'good', ts: ts};
}
msg.topic = @TOPIC@;
msg.payload = {seq: seq, gateway: 'bench', connection: @CONN@, device: @DEV@, group: 'g', ts: ts,
               values: values};
delete msg.modbusRequest;
delete msg.values;
return msg;
"""

SETTINGS_JS = """\
// Node-RED settings for bench/run.py --peers (generated): loopback only, no editor, no
// telemetry, no projects, no update check, memory context, warnings only.
module.exports = {
    uiHost: '127.0.0.1',
    uiPort: %(ui_port)d,
    httpAdminRoot: false,
    httpNodeRoot: false,
    flowFile: 'flows.json',
    credentialSecret: false,
    flowFilePretty: false,
    userDir: %(user_dir)s,
    nodesDir: [%(modbus_dir)s],
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false, ui: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false },
                       modules: { allowInstall: false } },
    editorTheme: { projects: { enabled: false } },
    logging: { console: { level: 'warn', metrics: false, audit: false } },
    functionExternalModules: false,
};
"""


def blocks(w, clock_regs):
    total = clock_regs + w["tags"] * w["stride"]
    return [[a, min(MAX_REGS, total - a)] for a in range(0, total, MAX_REGS)], total


def flow(w, interval, ports, mqtt_port, qos, clock_regs, topic_prefix):
    """The flow (a list of node objects) for workload w polled every `interval` ms."""
    nodes = [{"id": "tab", "type": "tab", "label": "bench"},
             {"id": "broker", "type": "mqtt-broker", "name": "bench", "broker": "127.0.0.1",
              "port": str(mqtt_port), "clientid": "", "autoConnect": True, "usetls": False,
              "protocolVersion": "4", "keepalive": "60", "cleansession": True,
              "birthTopic": "", "closeTopic": "", "willTopic": ""}]
    bl, total = blocks(w, clock_regs)
    for d in range(w["devices"]):
        i = f"d{d}"
        consts = {"BLOCKS": json.dumps(bl), "NREGS": str(total), "NBLOCKS": str(len(bl)),
                  "NTAGS": str(w["tags"]), "STRIDE": str(w["stride"]),
                  "FLOAT": "true" if w["type"] == "float32" else "false",
                  "TOPIC": json.dumps(f"{topic_prefix}/{i}/g"), "CONN": json.dumps(f"c{d}"),
                  "DEV": json.dumps(i)}
        plan, record = PLAN_JS, RECORD_JS
        for k, v in consts.items():
            plan, record = plan.replace(f"@{k}@", v), record.replace(f"@{k}@", v)
        nodes += [
            {"id": f"{i}-client", "type": "modbus-client", "name": i, "clienttype": "tcp",
             "bufferCommands": True, "stateLogEnabled": False, "queueLogEnabled": False,
             "failureLogEnabled": True, "tcpHost": "127.0.0.1", "tcpPort": str(ports[d]),
             "tcpType": "DEFAULT", "serialPort": "/dev/null", "serialType": "RTU-BUFFERD",
             "serialBaudrate": "9600", "serialDatabits": "8", "serialStopbits": "1",
             "serialParity": "none", "serialConnectionDelay": "100",
             "serialAsciiResponseStartDelimiter": "0x3A", "unit_id": "1", "commandDelay": "1",
             "clientTimeout": "1000", "reconnectOnTimeout": True, "reconnectTimeout": "2000",
             "parallelUnitIdsAllowed": True},
            {"id": f"{i}-tick", "type": "inject", "z": "tab", "name": f"{i} every {interval} ms",
             "props": [{"p": "payload"}], "repeat": str(interval / 1000), "crontab": "",
             "once": True, "onceDelay": "0.5", "topic": "", "payload": "",
             "payloadType": "date", "wires": [[f"{i}-plan"]]},
            {"id": f"{i}-plan", "type": "function", "z": "tab", "name": f"{i} plan",
             "func": plan, "outputs": 1, "wires": [[f"{i}-get"]]},
            {"id": f"{i}-get", "type": "modbus-flex-getter", "z": "tab", "name": f"{i} read",
             "showStatusActivities": False, "showErrors": True, "logIOActivities": False,
             "server": f"{i}-client", "useIOFile": False, "ioFile": "",
             "useIOForPayload": False, "emptyMsgOnFail": False, "keepMsgProperties": True,
             "wires": [[f"{i}-record"], []]},
            {"id": f"{i}-record", "type": "function", "z": "tab", "name": f"{i} record",
             "func": record, "outputs": 1, "wires": [[f"{i}-out"]]},
            {"id": f"{i}-out", "type": "mqtt out", "z": "tab", "name": f"{i} out", "topic": "",
             "qos": str(qos), "retain": "false", "broker": "broker", "wires": []},
        ]
    return nodes


def prepare(work, name, w, interval, ports, mqtt_port, qos, clock_regs, topic_prefix, ui_port):
    """Writes settings.js and flows.json into work/name-nodered; returns (argv, user_dir)."""
    user = Path(work) / f"{name}-nodered"
    user.mkdir(parents=True, exist_ok=True)
    (user / "flows.json").write_text(json.dumps(
        flow(w, interval, ports, mqtt_port, qos, clock_regs, topic_prefix)))
    (user / "settings.js").write_text(SETTINGS_JS % {
        "ui_port": ui_port, "user_dir": json.dumps(str(user)),
        "modbus_dir": json.dumps(str(PEERS_DIR / "node_modules/node-red-contrib-modbus"))})
    red = PEERS_DIR / "node_modules/node-red/red.js"
    return ["node", str(red), "--settings", str(user / "settings.js"), "--userDir", str(user),
            str(user / "flows.json")], user


def installed():
    return (PEERS_DIR / "node_modules/node-red/red.js").exists() and \
        (PEERS_DIR / "node_modules/node-red-contrib-modbus/package.json").exists()


def version():
    out = {}
    for pkg in ("node-red", "node-red-contrib-modbus"):
        try:
            out[pkg] = json.loads((PEERS_DIR / "node_modules" / pkg / "package.json")
                                  .read_text())["version"]
        except (OSError, ValueError):
            out[pkg] = None
    return out
