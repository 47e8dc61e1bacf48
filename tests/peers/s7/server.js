// tests/peers/s7/server.js: ironbridge's S7 test peer, the snap7 server (npm node-snap7) serving
// DB, M (merker), I (inputs), Q (outputs), T and C areas on a free loopback port, driven by the
// tests through a JSON-lines control socket.
//
//   node server.js SPEC.json PORTFILE CTLPORTFILE
//
// SPEC: {"pdu": 480, "dbs": {"1": 1000, ...}, "m": 256, "i": 256, "q": 256, "t": 64, "c": 64}
// (sizes in bytes; T and C hold 2 bytes per timer/counter). PORTFILE receives the S7 port,
// CTLPORTFILE the control port. Control requests, one JSON object per line, answered by one:
//   {"op":"set","area":"DB","db":1,"offset":4,"hex":"0102"}      -> {"ok":true}
//   {"op":"get","area":"DB","db":1,"offset":4,"length":2}        -> {"ok":true,"hex":"0102"}
//   {"op":"register","area":"DB","db":7,"size":10} / {"op":"unregister","area":"DB","db":7}
//   {"op":"drop"}   stop the server (every client is disconnected) and start it again
//   {"op":"stats"}  -> {"ok":true,"items":N,"clients":N}  (Read Var items answered so far)
'use strict';
const fs = require('fs');
const net = require('net');
const path = require('path');
// node_modules as tests/peers/s7/build.sh DIR made it (IB_S7_PEER_DIR), else beside this file.
const snap7 = require(path.resolve(process.env.IB_S7_PEER_DIR || __dirname, 'node_modules', 'node-snap7'));

const [specFile, portFile, ctlPortFile] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'));
const server = new snap7.S7Server();
let items = 0; // Read Var items answered (snap7 reports each as an evcDataRead event)

const areaCode = {
  DB: server.srvAreaDB, M: server.srvAreaMK, I: server.srvAreaPE, Q: server.srvAreaPA,
  T: server.srvAreaTM, C: server.srvAreaCT,
};

function register(area, db, size) {
  const buf = Buffer.alloc(size);
  const ok = area === 'DB' ? server.RegisterArea(areaCode.DB, db, buf)
                           : server.RegisterArea(areaCode[area], buf);
  if (!ok) throw new Error(`RegisterArea ${area} ${db} failed`);
}

function current(area, db) {
  return area === 'DB' ? server.GetArea(areaCode.DB, db) : server.GetArea(areaCode[area]);
}

function handle(req) {
  switch (req.op) {
  case 'set': {
    const buf = current(req.area, req.db);
    Buffer.from(req.hex, 'hex').copy(buf, req.offset);
    if (req.area === 'DB') server.SetArea(areaCode.DB, req.db, buf);
    else server.SetArea(areaCode[req.area], buf);
    return {ok: true};
  }
  case 'get': {
    const buf = current(req.area, req.db);
    return {ok: true, hex: buf.subarray(req.offset, req.offset + req.length).toString('hex')};
  }
  case 'register':
    register(req.area, req.db, req.size);
    return {ok: true};
  case 'unregister':
    if (req.area === 'DB') server.UnregisterArea(areaCode.DB, req.db);
    else server.UnregisterArea(areaCode[req.area]);
    return {ok: true};
  case 'drop':
    server.Stop();
    start();
    return {ok: true};
  case 'stats':
    return {ok: true, items, clients: server.ClientsCount()};
  default:
    return {ok: false, error: `unknown op ${req.op}`};
  }
}

let port = 0;
function start() {
  server.SetParam(server.LocalPort, port);
  if (server.StartTo('127.0.0.1') === false)
    throw new Error(`snap7 cannot listen on 127.0.0.1:${port}: ` +
                    server.ErrorText(server.LastError()));
}

// snap7 binds the port it is given: find a free one first (races are retried).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function main() {
  if (spec.pdu) server.SetParam(server.PDURequest, spec.pdu);
  for (const [db, size] of Object.entries(spec.dbs || {})) register('DB', Number(db), size);
  for (const a of ['M', 'I', 'Q', 'T', 'C'])
    if (spec[a.toLowerCase()]) register(a, 0, spec[a.toLowerCase()]);
  server.SetEventMask(server.evcDataRead);
  server.on('event', () => { items++; });
  for (let attempt = 0;; attempt++) {
    port = await freePort();
    try { start(); break; } catch (e) { if (attempt > 20) throw e; }
  }
  const ctl = net.createServer((sock) => {
    let pending = '';
    sock.on('data', (chunk) => {
      pending += chunk.toString();
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let out;
        try { out = handle(JSON.parse(line)); } catch (e) { out = {ok: false, error: String(e)}; }
        sock.write(JSON.stringify(out) + '\n');
      }
    });
    sock.on('error', () => {});
  });
  ctl.listen(0, '127.0.0.1', () => {
    fs.writeFileSync(ctlPortFile, String(ctl.address().port));
    fs.writeFileSync(portFile, String(port));
    console.log(`snap7 server on 127.0.0.1:${port}, control on ${ctl.address().port}`);
  });
}

process.on('SIGTERM', () => { server.Stop(); process.exit(0); });
main().catch((e) => { console.error(e); process.exit(1); });
