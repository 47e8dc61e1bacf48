#!/bin/bash
# Integration test of ironbridge-sim (meson test 'sim-basic'): runs the simulator on a kernel-chosen
# port and checks encodings, exceptions, writes, robustness, map errors and shutdown with real clients.
set -euo pipefail

SIM=${1:-}
EXAMPLE_MAP=${2:-}
# The system interpreter, because that is where Debian's python3-pymodbus lives; a python3 earlier
# in PATH (pyenv, venv) usually lacks it.
PY=/usr/bin/python3

passed=0
failed=0
pids=()
work=

pass() {
    passed=$((passed + 1))
    echo "ok $((passed + failed)) - $*"
}

fail() {
    failed=$((failed + 1))
    echo "not ok $((passed + failed)) - $*"
}

summary() {
    echo "$passed passed, $failed failed"
}

# A missing prerequisite must fail loudly: a test that silently passes proves nothing.
fatal() {
    echo "test-sim: $*" >&2
    fail "$*"
    summary
    exit 1
}

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ -n $work ]] && rm -rf "$work"
}
trap cleanup EXIT

[[ -n $SIM ]] || fatal "usage: $0 PATH/TO/ironbridge-sim [EXAMPLE.map]"
[[ -f $SIM && -x $SIM ]] || fatal "simulator '$SIM' is not an executable file (build it first)"
[[ -x $PY ]] || fatal "$PY not found; install python3 and python3-pymodbus"
"$PY" -c 'from pymodbus.client import ModbusTcpClient' 2>/dev/null ||
    fatal "$PY cannot import pymodbus.client (pymodbus 3); install python3-pymodbus"
[[ -z $EXAMPLE_MAP || -r $EXAMPLE_MAP ]] || fatal "example map '$EXAMPLE_MAP' is not readable"

work=$(mktemp -d "${TMPDIR:-/tmp}/test-sim.XXXXXX")

# start_sim NAME MAP [ARGS...]: sets sim_pid and sim_port, or returns 1 with the reason printed.
start_sim() {
    local name=$1 map=$2
    shift 2
    local pf="$work/$name.port"
    rm -f "$pf"
    "$SIM" --map "$map" --port 0 --port-file "$pf" "$@" >"$work/$name.out" 2>"$work/$name.err" &
    sim_pid=$!
    pids+=("$sim_pid")
    local i
    for ((i = 0; i < 200; i++)); do
        if [[ -s $pf ]]; then
            sim_port=$(<"$pf")
            return 0
        fi
        if ! kill -0 "$sim_pid" 2>/dev/null; then
            echo "# $name: simulator exited before listening:"
            sed 's/^/#   /' "$work/$name.err"
            return 1
        fi
        sleep 0.05
    done
    echo "# $name: no port file after 10 s"
    return 1
}

# stop_sim PID SIGNAL: the exit status of the simulator after SIGNAL, or 124 if it hangs.
stop_sim() {
    local pid=$1 sig=$2 i
    kill "-$sig" "$pid"
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null || true
        return 124
    fi
    local rc=0
    wait "$pid" || rc=$?
    return "$rc"
}

# run_py SCRIPT ARGS...: the script prints "ok - ..." / "not ok - ..." lines that count here.
run_py() {
    local out rc=0 line
    out=$("$PY" "$@" 2>&1) || rc=$?
    while IFS= read -r line; do
        case $line in
        "ok - "*) pass "${line#ok - }" ;;
        "not ok - "*) fail "${line#not ok - }" ;;
        "") ;;
        *) echo "# $line" ;;
        esac
    done <<<"$out"
    [[ $rc -eq 0 ]] || fail "python checks $(basename "$1") exited with status $rc"
}

cat >"$work/main.map" <<'EOF'
# table  address type      order  behaviour
holding  0       uint16    -      const 1234
holding  1       int16     BA     const -2
holding  2       int32     ABCD   const -100000
holding  4       uint32    DCBA   const 0x11223344
holding  6       int32     BADC   const 0x11223344
holding  8       float32   CDAB   const 123.25
holding  10      float32   -      const -1.5
holding  12      uint16    BA     const 0x1234
holding  20      int64     BADC   const -9007199254740993
holding  24      uint64    CDAB   const 0x0102030405060708
holding  28      uint64    DCBA   const 0x0102030405060708
holding  32      float64   ABCD   const 3.141592653589793
holding  36      float64   DCBA   const 1.0
holding  40      int64     -      const -2
holding  44      uint64    GHEFCDAB const 0x0102030405060708
holding  50      string10  AB     const "hello"
holding  60      string3   BA     const "abcde"
holding  70      string3   -      const "a\"#\\"  # quotes, escapes and a '#' inside
holding  100     uint16    -      const 0
holding  101     float32   -      sine 0 1 5
input    0       uint16    -      const 7
input    1       int32     CDAB   ramp 0 1 1000000
input    3       uint64    ABCD   clock_ms
input    7       float32   ABCD   sine 10 2 1
input    9       int16     -      random -5 5
input    10      float64   -      random 0.5 0.75
input    14      uint16    -      ramp 0 1 2
coil     0       bool      -      const 1
coil     1       bool      -      const 0
coil     2       bool      -      step 0 1 0.2
discrete 3       bool      -      const 1

size holding 200
EOF

cat >"$work/checks.py" <<'EOF'
import socket
import struct
import sys
import time

from pymodbus.client import ModbusTcpClient

port = int(sys.argv[1])


def check(ok, what, detail=""):
    print(("ok - " if ok else "not ok - ") + what + ("" if ok or not detail else ": " + detail))


def regs(r):
    return None if r.isError() else list(r.registers)


def exc(r):
    return getattr(r, "exception_code", None) if r.isError() else None


def connect():
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=3)
    if not c.connect():
        raise SystemExit("cannot connect to the simulator on port %d" % port)
    return c


def raw():
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def frame(tid, unit, pdu):
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the simulator")
        data += chunk
    return data


def response(s):
    tid, proto, length, unit = struct.unpack(">HHHB", recv_exact(s, 7))
    return tid, unit, recv_exact(s, length - 1)


def words(raw_regs):
    return b"".join(struct.pack(">H", r) for r in raw_regs)


c = connect()

# Expected registers are written out by hand from the order definitions, not computed, so the
# test cannot share a mistake with the encoder.
expect = [
    (0, [1234], "uint16 const"),
    (1, [0xFEFF], "int16 BA"),
    (2, [0xFFFE, 0x7960], "int32 ABCD"),
    (4, [0x4433, 0x2211], "uint32 DCBA"),
    (6, [0x2211, 0x4433], "int32 BADC"),
    (8, [0x8000, 0x42F6], "float32 CDAB"),
    (10, [0xBFC0, 0x0000], "float32 default order (ABCD)"),
    (12, [0x3412], "uint16 BA"),
    (20, [0xDFFF, 0xFFFF, 0xFFFF, 0xFFFF], "int64 BADC"),
    (24, [0x0708, 0x0506, 0x0304, 0x0102], "uint64 CDAB"),
    (28, [0x0807, 0x0605, 0x0403, 0x0201], "uint64 DCBA"),
    (32, [0x4009, 0x21FB, 0x5444, 0x2D18], "float64 ABCD"),
    (36, [0x0000, 0x0000, 0x0000, 0xF03F], "float64 DCBA"),
    (40, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], "int64 default order (ABCD)"),
    (44, [0x0708, 0x0506, 0x0304, 0x0102], "uint64 GHEFCDAB spelling"),
    (50, [0x6865, 0x6C6C, 0x6F00, 0, 0, 0, 0, 0, 0, 0], "string10 AB"),
    (60, [0x6261, 0x6463, 0x0065], "string3 BA"),
    (70, [0x6122, 0x235C, 0x0000], "string3 with escapes"),
]
for addr, want, what in expect:
    got = regs(c.read_holding_registers(addr, len(want), slave=1))
    check(got == want, "%s at holding %d" % (what, addr), "got %r, want %r" % (got, want))

got = regs(c.read_holding_registers(32, 4, slave=1))
check(got is not None and struct.unpack(">d", words(got))[0] == 3.141592653589793,
      "float64 ABCD decodes to pi exactly")
got = regs(c.read_holding_registers(8, 2, slave=1))
check(got is not None and struct.unpack(">f", words([got[1], got[0]]))[0] == 123.25,
      "float32 CDAB decodes to 123.25 after swapping words back")
got = regs(c.read_input_registers(0, 1, slave=1))
check(got == [7], "input register const (FC4)", "got %r" % got)

r = c.read_coils(0, 2, slave=1)
check(not r.isError() and r.bits[:2] == [True, False], "coils 0..1 are 1, 0",
      "got %r" % (None if r.isError() else r.bits[:2]))
r = c.read_discrete_inputs(0, 4, slave=1)
check(not r.isError() and r.bits[:4] == [False, False, False, True],
      "discrete input 3 is 1 and unused addresses below it read 0")

# Tables end at the highest used address + width, or at 'size' when that is larger.
check(regs(c.read_holding_registers(199, 1, slave=1)) == [0], "last holding register (size 200) reads 0")
for what, r in [
    ("holding read crossing the end (size 200)", c.read_holding_registers(199, 2, slave=1)),
    ("holding read at the end", c.read_holding_registers(200, 1, slave=1)),
    ("input read past the end (input 15)", c.read_input_registers(14, 2, slave=1)),
    ("coil read past the end", c.read_coils(3, 1, slave=1)),
    ("discrete read past the end", c.read_discrete_inputs(4, 1, slave=1)),
    ("holding write past the end", c.write_register(200, 1, slave=1)),
]:
    check(exc(r) == 2, what + " gives exception 2", "got %r" % r)

# Values written to const registers stay; behaviour-driven ones are rewritten on the next tick.
r = c.write_register(100, 4242, slave=1)
check(not r.isError() and regs(c.read_holding_registers(100, 1, slave=1)) == [4242],
      "FC6 write of holding 100 reads back")
r = c.write_registers(2, [1, 2], slave=1)
check(not r.isError() and regs(c.read_holding_registers(2, 2, slave=1)) == [1, 2],
      "FC16 write over an int32 const reads back")
c.write_registers(101, [0x7FC0, 0x0000], slave=1)  # NaN, which a sine never produces
r = c.write_coil(0, False, slave=1)
check(not r.isError() and c.read_coils(0, 1, slave=1).bits[0] is False, "FC5 write of coil 0 reads back")
time.sleep(0.3)
check(regs(c.read_holding_registers(100, 1, slave=1)) == [4242]
      and regs(c.read_holding_registers(2, 2, slave=1)) == [1, 2]
      and c.read_coils(0, 1, slave=1).bits[0] is False,
      "written const values survive several ticks")
got = regs(c.read_holding_registers(101, 2, slave=1))
f = struct.unpack(">f", words(got))[0] if got else float("nan")
check(-1.0 <= f <= 1.0, "a write to a sine register is overwritten by the next tick", "got %r" % f)

# Behaviours (tick 20 ms).
def int32_cdab(r):
    return struct.unpack(">i", words([r[1], r[0]]))[0]

a = int32_cdab(regs(c.read_input_registers(1, 2, slave=1)))
time.sleep(0.25)
b = int32_cdab(regs(c.read_input_registers(1, 2, slave=1)))
check(b - a >= 3, "ramp advances by STEP each tick", "%d then %d" % (a, b))

seen = set()
t_end = time.time() + 1.0
while time.time() < t_end and len(seen) < 3:
    seen.add(regs(c.read_input_registers(14, 1, slave=1))[0])
    time.sleep(0.005)
check(seen == {0, 1, 2}, "ramp 0 1 2 wraps back to START after MAX", "saw %r" % sorted(seen))

ms = struct.unpack(">Q", words(regs(c.read_input_registers(3, 4, slave=1))))[0]
check(abs(ms - time.time() * 1000) < 5000, "clock_ms is the wall clock in ms", "got %d" % ms)

sines = set()
ints = set()
floats = []
coil_states = set()
for _ in range(40):
    sines.add(struct.unpack(">f", words(regs(c.read_input_registers(7, 2, slave=1))))[0])
    ints.add(struct.unpack(">h", words(regs(c.read_input_registers(9, 1, slave=1))))[0])
    floats.append(struct.unpack(">d", words(regs(c.read_input_registers(10, 4, slave=1))))[0])
    coil_states.add(c.read_coils(2, 1, slave=1).bits[0])
    time.sleep(0.025)
check(len(sines) > 5 and all(8.0 <= v <= 12.0 for v in sines), "sine stays within CENTER +- AMPLITUDE and moves",
      "%r" % sorted(sines)[:3])
check(len(ints) > 3 and all(-5 <= v <= 5 for v in ints), "integer random stays in [MIN, MAX] and varies",
      "%r" % sorted(ints))
check(len(set(floats)) > 5 and all(0.5 <= v <= 0.75 for v in floats), "float random stays in [MIN, MAX]")
check(coil_states == {False, True}, "step alternates a coil between A and B", "%r" % coil_states)

for unit in (0, 1, 17, 247, 255):
    got = regs(c.read_holding_registers(0, 1, slave=unit))
    check(got == [1234], "answers unit id %d without a 'units' line" % unit, "got %r" % got)

# Requests libmodbus would answer only after a response-timeout sleep must be answered at once.
s = raw()
t0 = time.monotonic()
results = []
for tid, pdu in enumerate([b"\x07", b"\x2b\x0e\x01\x00", b"\x03\x00\x00\x00\x7e", b"\x03\x00\x00\x00\x00",
                           b"\x10\x00\x00\x00\x02\x03\x00\x01\x00"]):
    s.sendall(frame(tid, 1, pdu))
    results.append(response(s))
dt = time.monotonic() - t0
check([(t, u, b[0], b[1]) for t, u, b in results] ==
      [(0, 1, 0x87, 1), (1, 1, 0xAB, 1), (2, 1, 0x83, 3), (3, 1, 0x83, 3), (4, 1, 0x90, 3)],
      "illegal function and bad quantities give exceptions 1 and 3", "%r" % results)
check(dt < 1.0, "those exceptions come without libmodbus's response-timeout stall", "%.3f s" % dt)

# Several requests in one segment and one request across two segments.
s.sendall(frame(100, 1, b"\x03\x00\x00\x00\x01") + frame(101, 1, b"\x04\x00\x00\x00\x01")
          + frame(102, 1, b"\x01\x00\x01\x00\x01"))
got = [response(s) for _ in range(3)]
check(got == [(100, 1, b"\x03\x02\x04\xd2"), (101, 1, b"\x04\x02\x00\x07"), (102, 1, b"\x01\x01\x00")],
      "pipelined requests are answered in order", "%r" % got)
req = frame(103, 9, b"\x03\x00\x00\x00\x01")
s.sendall(req[:5])
other = connect()
t0 = time.monotonic()
fine = all(regs(other.read_holding_registers(0, 1, slave=1)) == [1234] for _ in range(10))
dt = time.monotonic() - t0
check(fine and dt < 0.4, "a client holding half a request does not delay others", "%.3f s" % dt)
s.sendall(req[5:])
check(response(s) == (103, 9, b"\x03\x02\x04\xd2"), "a request split across segments is answered")
s.close()

# Garbage gets its sender dropped and nobody else.
g = raw()
g.sendall(b"GET / HTTP/1.0\r\n\r\n")
try:
    closed = g.recv(100) == b""
except ConnectionResetError:
    closed = True
check(closed, "a client sending garbage is disconnected")
g.close()
check(regs(other.read_holding_registers(0, 1, slave=1)) == [1234], "other clients keep working after that")
other.close()

# Many concurrent clients, each with interleaved full-size reads.
clients = [raw() for _ in range(10)]
ok = True
for rnd in range(20):
    for i, cl in enumerate(clients):
        cl.sendall(frame(rnd * 10 + i, 1, b"\x03\x00\x00\x00\x7d"))
    for i, cl in enumerate(clients):
        tid, unit, body = response(cl)
        ok = ok and tid == rnd * 10 + i and body[:2] == b"\x03\xfa" and body[2:4] == b"\x04\xd2"
for cl in clients:
    cl.close()
check(ok, "10 concurrent clients reading 125 registers get their own answers")

c.close()
EOF

cat >"$work/units.py" <<'EOF'
import sys

from pymodbus.client import ModbusTcpClient

c = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]), timeout=3)
if not c.connect():
    raise SystemExit("cannot connect")
for unit in (1, 2, 3):
    r = c.read_holding_registers(0, 1, slave=unit)
    ok = not r.isError() and r.registers == [5]
    print(("ok - " if ok else "not ok - ") + "listed unit id %d is answered" % unit)
for unit in (0, 4, 255):
    r = c.read_holding_registers(0, 1, slave=unit)
    ok = r.isError() and getattr(r, "exception_code", None) == 11
    print(("ok - " if ok else "not ok - ") + "unlisted unit id %d gets exception 11" % unit
          + ("" if ok else " (got %r)" % getattr(r, "exception_code", r)))
c.close()
EOF

cat >"$work/read0.py" <<'EOF'
import sys

from pymodbus.client import ModbusTcpClient

c = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]), timeout=3)
r = c.read_holding_registers(0, 1, slave=1) if c.connect() else None
ok = r is not None and not r.isError() and r.registers == [int(sys.argv[2])]
print(("ok - " if ok else "not ok - ") + "example map serves holding 0 = %s" % sys.argv[2]
      + ("" if ok else " (got %r)" % getattr(r, "registers", r)))
c.close()
EOF

# --- the main map over Modbus ---------------------------------------------------------------
if start_sim main "$work/main.map" --tick-ms 20; then
    pass "simulator starts on --port 0 and writes the port file"
    if grep -qx "ironbridge-sim: listening on 127.0.0.1:$sim_port" "$work/main.out"; then
        pass "stdout announces the listening address and port"
    else
        fail "stdout announces the listening address and port (got: $(head -c 200 "$work/main.out"))"
    fi
    run_py "$work/checks.py" "$sim_port"

    main_pid=$sim_pid
    main_port=$sim_port
    rc=0
    "$SIM" --map "$work/main.map" --port "$main_port" >/dev/null 2>"$work/busy.err" &
    busy=$!
    pids+=("$busy")
    wait "$busy" || rc=$?
    if [[ $rc -eq 1 ]] && grep -q "cannot listen" "$work/busy.err"; then
        pass "a port in use is reported with exit status 1"
    else
        fail "a port in use is reported with exit status 1 (got $rc: $(cat "$work/busy.err"))"
    fi

    rc=0
    stop_sim "$main_pid" TERM || rc=$?
    if [[ $rc -eq 0 ]]; then pass "SIGTERM stops it with status 0"; else fail "SIGTERM stops it with status 0 (got $rc)"; fi
    if [[ ! -e $work/main.port ]]; then pass "the port file is removed on clean shutdown"; else fail "the port file is removed on clean shutdown"; fi
    if grep -qi "sanitizer\|runtime error" "$work/main.err"; then
        fail "no sanitizer reports: $(grep -i -m3 'sanitizer\|runtime error' "$work/main.err")"
    else
        pass "no sanitizer reports from the main run"
    fi
else
    fail "simulator starts on --port 0 and writes the port file"
fi

# --- unit id filter, SIGINT -----------------------------------------------------------------
printf 'holding 0 uint16 - const 5\nunits 1 2\nunits 3\n' >"$work/units.map"
if start_sim units "$work/units.map" --quiet; then
    run_py "$work/units.py" "$sim_port"
    rc=0
    stop_sim "$sim_pid" INT || rc=$?
    if [[ $rc -eq 0 ]]; then pass "SIGINT stops it with status 0"; else fail "SIGINT stops it with status 0 (got $rc)"; fi
    if [[ -s $work/units.err ]]; then fail "--quiet keeps stderr empty (got: $(head -c 200 "$work/units.err"))"; else pass "--quiet keeps stderr empty"; fi
else
    fail "simulator starts with a 'units' map"
fi

# --- a farm: --ports N serves the same map on N ports ----------------------------------------
printf 'holding 0 uint16 - const 4242\n' >"$work/farm.map"
if start_sim farm "$work/farm.map" --ports 3 --quiet; then
    mapfile -t farm_ports <"$work/farm.port"
    if [[ ${#farm_ports[@]} -eq 3 ]]; then pass "--ports 3 writes 3 ports to the port file"; else fail "--ports 3 writes 3 ports to the port file (got ${#farm_ports[@]})"; fi
    farm_ok=0
    for p in "${farm_ports[@]}"; do
        v=$("$PY" -c 'import sys
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]), timeout=3); c.connect()
print(c.read_holding_registers(0, 1, slave=1).registers[0])' "$p" 2>/dev/null) || true
        [[ $v == 4242 ]] && farm_ok=$((farm_ok + 1))
    done
    if [[ $farm_ok -eq 3 ]]; then pass "every port of the farm serves the map"; else fail "every port of the farm serves the map ($farm_ok of 3 answered 4242)"; fi
    stop_sim "$sim_pid" TERM || true
    if [[ -e $work/farm.port ]]; then fail "the farm's port file is removed at exit"; else pass "the farm's port file is removed at exit"; fi
else
    fail "simulator starts with --ports 3"
fi

# --- the shipped example map ----------------------------------------------------------------
if [[ -n $EXAMPLE_MAP ]]; then
    if start_sim example "$EXAMPLE_MAP" --quiet; then
        run_py "$work/read0.py" "$sim_port" 1234
        stop_sim "$sim_pid" TERM || true
    else
        fail "simulator starts with the example map $EXAMPLE_MAP"
    fi
fi

# --- map errors: FILE:LINE: message and exit status 2 ---------------------------------------
map_error() {
    local name=$1 body=$2 want=$3 rc=0
    printf '%b' "$body" >"$work/$name.map"
    "$SIM" --map "$work/$name.map" --port 0 >/dev/null 2>"$work/$name.err" || rc=$?
    if [[ $rc -eq 2 ]] && grep -qF -- "$work/$name.map:$want" "$work/$name.err"; then
        pass "map error $name: exit 2 and '$want'"
    else
        fail "map error $name: exit 2 and '$want' (got $rc: $(head -c 300 "$work/$name.err"))"
    fi
}
map_error overlap 'holding 0 uint16 - const 1\n# comment\n\nholding 10 float32 CDAB const 1\nholding 11 uint16 - const 2\n' \
    "5: holding 11 uint16 overlaps holding 10 float32 defined on line 4"
map_error type 'holding 0 uint17 - const 1\n' "1: unknown type 'uint17'"
map_error range 'holding 0 uint16 - const 70000\n' "1: value 70000 is out of range for uint16 (0..65535)"
map_error order 'holding 0 int32 AB const 1\n' "1: order 'AB' is not valid for int32"
map_error bool 'holding 0 bool - const 1\n' "1: holding table holds registers"
map_error table 'holdings 0 uint16 - const 1\n' "1: unknown table or directive 'holdings'"
map_error behaviour 'input 0 uint16 - wobble 1\n' "1: unknown behaviour 'wobble'"
map_error args 'input 0 uint16 - ramp 0 1\n' "1: ramp takes START STEP MAX (3 values), got 2"
map_error string 'holding 0 string2 - const "hello"\n' "1: string of 5 bytes does not fit in string2"
map_error quote 'holding 0 string2 - const "he\n' "1: unterminated quoted string"
map_error end 'holding 65535 uint32 - const 1\n' "1: uint32 at holding 65535 runs past the last address"
map_error clock 'holding 0 uint32 - clock_ms\n' "1: clock_ms needs a 64-bit type"
map_error units 'units 1 256\n' "1: unit id '256' is not a number from 0 to 255"
map_error size 'size holding 10\nsize holding 20\n' "2: size of holding already set on line 1"

# --- command line -----------------------------------------------------------------------------
expect_status() {
    local want=$1 what=$2 rc=0
    shift 2
    "$SIM" "$@" >"$work/cli.out" 2>"$work/cli.err" || rc=$?
    if [[ $rc -eq $want ]]; then pass "$what: exit $want"; else fail "$what: exit $want (got $rc: $(head -c 200 "$work/cli.err"))"; fi
}
expect_status 0 "--help" --help
missing=
for opt in --map --listen --port --ports --port-file --tick-ms --quiet --help --version; do
    grep -q -- "$opt" "$work/cli.out" || missing+=" $opt"
done
if [[ -z $missing ]]; then pass "--help documents every option"; else fail "--help documents every option (missing:$missing)"; fi
expect_status 0 "--version" --version
expect_status 2 "no --map"
expect_status 2 "unknown option" --map "$work/main.map" --bogus
expect_status 2 "--port 65536" --map "$work/main.map" --port 65536
expect_status 2 "--ports 0" --map "$work/main.map" --ports 0
expect_status 2 "--port 65535 --ports 2" --map "$work/main.map" --port 65535 --ports 2
expect_status 2 "--tick-ms 0" --map "$work/main.map" --tick-ms 0
expect_status 2 "--listen not-an-ip" --map "$work/main.map" --listen not-an-ip
expect_status 2 "unreadable map" --map "$work/does-not-exist.map"

summary
[[ $failed -eq 0 ]]
