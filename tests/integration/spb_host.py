"""A Sparkplug B host of ours for the tests (docs/sparkplug.md): subscribes to spBv1.0/# over
MQTT 5 with "retain as published" (so that the real retain flag of each PUBLISH is seen), decodes
every payload with classes that protoc generates from daemon/sparkplug.proto at test time, and
checks the edge-node rules of the Sparkplug 3.0 checklist on the captured traffic, one named
function per rule (each raises Failure naming the rule and the offending message).

Debian's python3-paho-mqtt (1.6) and python3-protobuf; protoc from protobuf-compiler."""

import importlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from ibtest import Failure, LOOPBACK, ROOT, check, require_program, wait_until

PROTO = ROOT / "daemon" / "sparkplug.proto"

# Sparkplug datatypes (specification: Payloads)
INT32, INT64, UINT64, FLOAT, DOUBLE, BOOLEAN, STRING = 3, 4, 8, 9, 10, 11, 12


def payload_module(dir):
    """The protobuf classes of our .proto, generated into dir by protoc."""
    protoc = require_program("protoc", "protoc (Debian: protobuf-compiler)")
    out = Path(dir) / "spbpy"
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([protoc, f"--proto_path={PROTO.parent}", f"--python_out={out}", str(PROTO)],
                   check=True)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module("sparkplug_pb2")


class Msg:
    def __init__(self, topic, raw, qos, retain, payload, t):
        self.topic, self.raw, self.qos, self.retain, self.p, self.time = (topic, raw, qos, retain,
                                                                          payload, t)
        parts = topic.split("/")
        self.kind = parts[2] if len(parts) > 2 else ""
        self.device = parts[4] if len(parts) > 4 else None

    def metric(self, name):
        for m in self.p.metrics:
            if m.name == name:
                return m
        return None

    def __repr__(self):
        seq = self.p.seq if self.p.HasField("seq") else None
        return f"<{self.topic} q{self.qos} r{int(self.retain)} seq={seq} {len(self.p.metrics)} metrics>"


def value_of(m):
    """A metric's value as Python (None when null)."""
    if m.is_null:
        return None
    which = m.WhichOneof("value")
    v = getattr(m, which) if which else None
    if which == "long_value" and m.datatype == INT64 and v >= 1 << 63:
        v -= 1 << 64
    return v


def props(m):
    return {k: v for k, v in zip(m.properties.keys, m.properties.values)}


class Host:
    """The host: `with Host(broker, dir) as h:` ... h.messages(kind)."""

    def __init__(self, broker, dir, client_id="ibtest-spbhost"):
        self.pb = payload_module(dir)
        self.msgs = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_connect = self._on_connect
        self.c.connect(LOOPBACK, broker.port, keepalive=30)
        self.c.loop_start()
        check(self.subscribed.wait(10), "the Sparkplug host could not subscribe to spBv1.0/#")

    def _on_connect(self, c, ud, flags, rc, properties=None):
        c.subscribe("spBv1.0/#", options=SubscribeOptions(qos=1, retainAsPublished=True))

    def _on_message(self, c, ud, m):
        p = self.pb.Payload()
        if not m.topic.startswith("spBv1.0/STATE/"):
            p.ParseFromString(m.payload)
        with self.lock:
            self.msgs.append(Msg(m.topic, bytes(m.payload), m.qos, bool(m.retain), p,
                                 time.monotonic()))

    def publish(self, topic, payload, qos=1):
        self.c.publish(topic, payload, qos=qos).wait_for_publish()

    def rebirth_request(self, group, node):
        p = self.pb.Payload()
        p.timestamp = int(time.time() * 1000)
        m = p.metrics.add()
        m.name = "Node Control/Rebirth"
        m.datatype = BOOLEAN
        m.boolean_value = True
        self.publish(f"spBv1.0/{group}/NCMD/{node}", p.SerializeToString())

    def state(self, host_id, online, ts):
        """Publish this host's STATE as a primary host does (retained, QoS 1, JSON)."""
        text = '{"online":%s,"timestamp":%d}' % ("true" if online else "false", ts)
        self.c.publish(f"spBv1.0/STATE/{host_id}", text, qos=1, retain=True).wait_for_publish()

    def dcmd(self, group, node, device, metrics):
        """A DCMD: metrics is a list of (alias, datatype, field, value)."""
        p = self.pb.Payload()
        p.timestamp = int(time.time() * 1000)
        for alias, dt, field, value in metrics:
            m = p.metrics.add()
            m.alias = alias
            m.datatype = dt
            setattr(m, field, value)
        self.publish(f"spBv1.0/{group}/DCMD/{node}/{device}", p.SerializeToString())

    def messages(self, kind=None, device=None):
        with self.lock:
            return [m for m in self.msgs if (kind is None or m.kind == kind) and
                    (device is None or m.device == device)]

    def wait_for(self, pred, timeout, what):
        if not wait_until(lambda: any(pred(m) for m in self.messages()), timeout):
            raise Failure(f"the host did not receive {what} within {timeout} s; it got: "
                          f"{self.messages()[-15:]}")
        return [m for m in self.messages() if pred(m)]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---- the rules, each a function over the captured messages of one edge node ------------------

def sessions(msgs):
    """The messages split at each NBIRTH (NDEATH belongs to the session it ends)."""
    out, cur = [], None
    for m in msgs:
        if m.kind == "NBIRTH":
            cur = [m]
            out.append(cur)
        elif cur is not None:
            cur.append(m)
    return out


def rule_nbirth(msgs):
    """6: NBIRTH at QoS 0, not retained, seq 0, a timestamp, bdSeq, Node Control/Rebirth
    (Boolean, false, no alias), every metric with name, datatype and value."""
    births = [m for m in msgs if m.kind == "NBIRTH"]
    check(births, "rule NBIRTH: no NBIRTH seen")
    for b in births:
        check(b.qos == 0 and not b.retain, f"rule NBIRTH: {b} is not QoS 0 / not retained")
        check(b.p.HasField("seq") and b.p.seq == 0, f"rule NBIRTH: {b} has not seq 0")
        check(b.p.HasField("timestamp"), f"rule NBIRTH: {b} has no timestamp")
        bd = b.metric("bdSeq")
        check(bd is not None and bd.datatype == INT64 and 0 <= value_of(bd) <= 255,
              f"rule NBIRTH: {b} lacks an Int64 bdSeq 0..255")
        rb = b.metric("Node Control/Rebirth")
        check(rb is not None and rb.datatype == BOOLEAN and value_of(rb) is False and
              not rb.HasField("alias"), f"rule NBIRTH: Node Control/Rebirth wrong in {b}: {rb}")
        for m in b.p.metrics:
            check(m.name and m.HasField("datatype") and (m.is_null or m.WhichOneof("value")),
                  f"rule NBIRTH: metric without name, datatype or value in {b}: {m}")


def rule_seq(msgs):
    """8: every message but NDEATH carries the previous seq + 1 mod 256, across NBIRTH, DBIRTH,
    DDATA and DDEATH of a session."""
    for s in sessions(msgs):
        prev = None
        for m in s:
            if m.kind == "NDEATH":
                continue
            check(m.p.HasField("seq"), f"rule seq: {m} has no seq")
            if prev is not None:
                check(m.p.seq == (prev + 1) % 256,
                      f"rule seq: {m} follows seq {prev} (expected {(prev + 1) % 256})")
            prev = m.p.seq


def rule_dbirth_before_data(msgs):
    """7: a device's DBIRTH before any of its DDATA in a session (and again after its DDEATH);
    it lists every metric the device sends."""
    for s in sessions(msgs):
        born = {}
        for m in s:
            if m.kind == "DBIRTH":
                born[m.device] = {x.alias for x in m.p.metrics}
            elif m.kind == "DDEATH":
                born.pop(m.device, None)
            elif m.kind == "DDATA":
                check(m.device in born, f"rule DBIRTH before data: {m} before its DBIRTH")
                for x in m.p.metrics:
                    check(x.alias in born[m.device],
                          f"rule DBIRTH before data: alias {x.alias} of {m} not in its DBIRTH")


def rule_aliases(msgs):
    """10 and 14: aliases unique across the node's births; BIRTH metrics have name and alias,
    DATA metrics the alias only; names unique without regard to case per device."""
    for s in sessions(msgs):
        seen = {}
        for m in s:
            if m.kind == "DBIRTH" or m.kind == "NBIRTH":
                names = [x.name.lower() for x in m.p.metrics]
                check(len(names) == len(set(names)), f"rule aliases: names repeat in {m}")
                for x in m.p.metrics:
                    if not x.HasField("alias"):
                        continue
                    key = (m.device, x.name)
                    check(seen.get(x.alias, key) == key,
                          f"rule aliases: alias {x.alias} used twice ({seen.get(x.alias)}, {key})")
                    seen[x.alias] = key
            elif m.kind == "DDATA":
                for x in m.p.metrics:
                    check(x.HasField("alias") and not x.name,
                          f"rule aliases: a DDATA metric with a name or no alias: {m} {x}")


def rule_data(msgs):
    """9: DDATA at QoS 0, not retained, timestamped, every metric timestamped."""
    for m in msgs:
        if m.kind in ("DDATA", "DBIRTH", "DDEATH"):
            check(m.qos == 0 and not m.retain, f"rule data: {m} not QoS 0 / not retained")
            check(m.p.HasField("timestamp"), f"rule data: {m} has no timestamp")
        if m.kind == "DDATA":
            for x in m.p.metrics:
                check(x.HasField("timestamp"), f"rule data: metric without timestamp in {m}")


def rule_quality(msgs):
    """Quality: a null metric carries the Quality property and a reason; a value never comes
    with a bad Quality."""
    for m in msgs:
        for x in m.p.metrics:
            pr = props(x)
            if x.is_null and m.kind in ("DDATA", "DBIRTH"):
                check("Quality" in pr and pr["Quality"].int_value in (0, 500) and "reason" in pr,
                      f"rule quality: a null metric without Quality/reason in {m}: {x}")
            elif "Quality" in pr:
                check(False, f"rule quality: a value with a Quality property in {m}: {x}")


EDGE_KINDS = ("NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA")


def check_all(msgs):
    """Every rule on what the edge node published (commands from hosts left out)."""
    msgs = [m for m in msgs if m.kind in EDGE_KINDS]
    for rule in (rule_nbirth, rule_seq, rule_dbirth_before_data, rule_aliases, rule_data,
                 rule_quality):
        rule(msgs)


# ---- the second, independent decoding: npm sparkplug-payload (tests/peers/sparkplug) ----------

PEER = ROOT / "tests" / "peers" / "sparkplug"
TYPE_NAMES = {1: "Int8", 2: "Int16", 3: "Int32", 4: "Int64", 5: "UInt8", 6: "UInt16",
              7: "UInt32", 8: "UInt64", 9: "Float", 10: "Double", 11: "Boolean", 12: "String",
              13: "DateTime", 14: "Text"}


def peer_decode(payloads):
    """Each payload (bytes) decoded by sparkplug-payload, as dicts (64-bit numbers as strings)."""
    r = subprocess.run([str(PEER / "install.sh")], capture_output=True, text=True)
    check(r.returncode == 0, f"the sparkplug-payload peer could not be installed: {r.stderr}")
    node = require_program("node", "node (Debian: nodejs)")
    r = subprocess.run([node, str(PEER / "decode.js")], input="".join(
        p.hex() + "\n" for p in payloads), capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f"decode.js failed: {r.stderr}")
    import json
    out = [json.loads(line) for line in r.stdout.splitlines()]
    check(len(out) == len(payloads), f"decode.js gave {len(out)} results for {len(payloads)}")
    return out


def _same(ours, theirs):
    """Our decoding's value (Python) against the peer's (JSON: numbers, strings for Long)."""
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if isinstance(ours, bool) or isinstance(ours, str):
        return ours == theirs
    if isinstance(ours, int):
        return str(ours) == str(theirs)
    return float(theirs) == ours


def cross_check(msgs):
    """rule two decoders: every captured edge-node payload decoded by sparkplug-payload agrees
    with ours on seq, timestamp and every metric's name, alias, datatype, value, null and
    historical flags and properties. Returns the number of metrics compared."""
    msgs = [m for m in msgs if m.kind in EDGE_KINDS]
    theirs = peer_decode([m.raw for m in msgs])
    compared = 0
    for m, t in zip(msgs, theirs):
        where = f"{m} (sparkplug-payload: {t})"
        check("error" not in t, f"rule two decoders: sparkplug-payload cannot decode {where}")
        check(str(t.get("seq")) == str(m.p.seq) if m.p.HasField("seq") else
              t.get("seq") in (None, "0", 0), f"rule two decoders: seq differs in {where}")
        check(str(t.get("timestamp")) == str(m.p.timestamp),
              f"rule two decoders: timestamp differs in {where}")
        tm = t.get("metrics", [])
        check(len(tm) == len(m.p.metrics), f"rule two decoders: metric count differs in {where}")
        for x, y in zip(m.p.metrics, tm):
            what = f"metric {x.name or x.alias} of {m}: ours {x} theirs {y}"
            check((y.get("name") or "") == x.name, f"rule two decoders: name, {what}")
            if x.HasField("alias"):
                check(str(y.get("alias")) == str(x.alias), f"rule two decoders: alias, {what}")
            check(y.get("type") == TYPE_NAMES.get(x.datatype),
                  f"rule two decoders: datatype, {what}")
            # sparkplug-payload 1.0.3 gives no isNull of its own: a null is value null.
            check((bool(y.get("isNull")) or y.get("value") is None) == x.is_null,
                  f"rule two decoders: is_null, {what}")
            check(bool(y.get("isHistorical")) == x.is_historical,
                  f"rule two decoders: is_historical, {what}")
            check(_same(value_of(x), y.get("value")), f"rule two decoders: value, {what}")
            tp = y.get("properties") or {}
            for k, v in props(x).items():
                which = v.WhichOneof("value")
                check(k in tp and _same(getattr(v, which), tp[k].get("value")),
                      f"rule two decoders: property {k}, {what}")
            compared += 1
    return compared
