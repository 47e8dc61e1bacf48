#!/bin/bash
# Shows ironbridge end to end on this machine: the Modbus simulator plays a power meter and a
# drive (conf/demo.map), the gateway polls them (conf/demo.yaml) and publishes JSON over TLS to
# a local mosquitto, and mosquitto_sub prints every message as it arrives.
#
#   sudo ./demo.sh [--seconds N] [--no-install]
#
#   --seconds N    stop after N seconds (default: run until Ctrl-C)
#   --no-install   do not check for or install the Debian packages it needs
#
# Everything listens on 127.0.0.1 only, on free ports. A throw-away CA, the configuration and
# all logs go to .demo/ (replaced at every run). Everything started is stopped on exit.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

cd "$(dirname "$(readlink -f "$0")")"
ROOT=$PWD
DEMO=$ROOT/.demo
BUILD=$ROOT/build
PY=/usr/bin/python3

seconds=0
install=1
while (($#)); do
    case "$1" in
        --seconds)
            [[ ${2-} =~ ^[0-9]+$ && $2 -gt 0 ]] || { echo "demo.sh: --seconds needs a positive number" >&2; exit 2; }
            seconds=$2; shift ;;
        --seconds=*)
            seconds=${1#--seconds=}
            [[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "demo.sh: --seconds needs a positive number" >&2; exit 2; } ;;
        --no-install) install=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "demo.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [[ -t 1 ]]; then
    say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
else
    say() { printf 'demo: %s\n' "$*"; }
fi
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# ---- stop everything we started, newest first: the gateway, then the subscriber (which still
# prints the gateway's "offline"), the broker, the simulator. The children run in their own
# sessions (setsid) so that Ctrl-C reaches only this script, which then stops them in order.
pids=()
names=()
cleaning=0
cleanup() {
    local status=$?
    ((cleaning)) && return
    cleaning=1
    trap - INT TERM
    local i pid
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            if kill -0 "$pid" 2>/dev/null; then
                echo "demo: ${names[i]} (pid $pid) ignored SIGTERM for 5 s; killing it" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        wait "$pid" 2>/dev/null || true
    done
    if ((${#pids[@]})); then
        say "stopped everything; logs, configuration and certificates are in $DEMO/"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 0' INT TERM

started() { pids+=("$1"); names+=("$2"); }

# wait_for_port PORT NAME PID: waits up to 10 s for 127.0.0.1:PORT to accept connections.
wait_for_port() {
    local port=$1 name=$2 pid=$3
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---- 1. packages and build
if ((install)); then
    # shellcheck source=tests/lib/deps.sh
    source tests/lib/deps.sh
    ib_install_deps || die "could not install the required packages"
fi
say "building in $BUILD"
if [[ ! -f $BUILD/build.ninja ]]; then
    out=$(meson setup "$BUILD" 2>&1) || {
        tail -n 20 <<<"$out" >&2
        die "meson setup $BUILD failed (above; the whole log: $BUILD/meson-logs/meson-log.txt)"
    }
fi
ninja -C "$BUILD" >/dev/null || { ninja -C "$BUILD"; die "the build failed"; }
DAEMON=$BUILD/daemon/ironbridge
SIM=$BUILD/tests/sim/ironbridge-sim
[[ -x $DAEMON ]] || die "$DAEMON was not built"
[[ -x $SIM ]] || die "$SIM was not built"
for prog in /usr/sbin/mosquitto mosquitto_sub openssl "$PY"; do
    command -v "$prog" >/dev/null || die "$prog is missing (run without --no-install)"
done

# ---- 2. a throw-away PKI: CA, server certificate for localhost / 127.0.0.1
rm -rf "$DEMO"
mkdir -p "$DEMO"
say "making a throw-away CA and broker certificate in $DEMO/pki"
PYTHONPATH=$ROOT/tests/lib "$PY" -c 'import sys, ibtest; ibtest.Pki(sys.argv[1])' "$DEMO" ||
    die "could not make the certificates"
CA=$DEMO/pki/ca.crt

# ---- 3. the Modbus simulator (a power meter and a drive)
setsid "$SIM" --map conf/demo.map --port 0 --port-file "$DEMO/sim.port" >"$DEMO/sim.log" 2>&1 &
started $! ironbridge-sim
for _ in $(seq 100); do [[ -s $DEMO/sim.port ]] && break; sleep 0.1; done
[[ -s $DEMO/sim.port ]] || { cat "$DEMO/sim.log" >&2; die "the simulator did not start"; }
MODBUS_PORT=$(<"$DEMO/sim.port")
say "Modbus simulator on 127.0.0.1:$MODBUS_PORT (map conf/demo.map)"

# ---- 4. mosquitto with TLS on a free loopback port
MQTT_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
    echo "per_listener_settings false"
    echo "listener $MQTT_PORT 127.0.0.1"
    echo "allow_anonymous true"
    echo "cafile $CA"
    echo "certfile $DEMO/pki/server.crt"
    echo "keyfile $DEMO/pki/server.key"
    echo "require_certificate false"
    echo "persistence false"
    echo "log_dest file $DEMO/mosquitto.log"
    echo "log_type error"
    echo "log_type warning"
    echo "log_type notice"
    echo "log_type information"
    # As root mosquitto would switch to the user "mosquitto", which cannot write in .demo/.
    if ((EUID == 0)); then echo "user root"; fi
} >"$DEMO/mosquitto.conf"
setsid /usr/sbin/mosquitto -c "$DEMO/mosquitto.conf" >"$DEMO/mosquitto.out" 2>&1 &
started $! mosquitto
wait_for_port "$MQTT_PORT" mosquitto "$!" ||
    { cat "$DEMO/mosquitto.out" "$DEMO/mosquitto.log" >&2 2>/dev/null; die "mosquitto did not start"; }
say "mosquitto (TLS) on 127.0.0.1:$MQTT_PORT"

# ---- 5. the gateway
sed -e "s|@MQTT_PORT@|$MQTT_PORT|g" -e "s|@MODBUS_PORT@|$MODBUS_PORT|g" -e "s|@CA_FILE@|$CA|g" \
    conf/demo.yaml >"$DEMO/ironbridge.yaml"
"$DAEMON" --check -c "$DEMO/ironbridge.yaml" --plugin-dir "$BUILD/plugins" ||
    die "the generated configuration $DEMO/ironbridge.yaml does not pass --check"

# The subscriber first, so that the first messages are not missed.
say "messages on ironbridge/# (topic, then JSON payload):"
setsid mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" --cafile "$CA" -t 'ironbridge/#' -v -q 1 \
    -i "demo-sub-$$" &
started $! mosquitto_sub
sleep 0.3

setsid "$DAEMON" -c "$DEMO/ironbridge.yaml" --plugin-dir "$BUILD/plugins" \
    2>"$DEMO/ironbridge.log" &
gw=$!
started "$gw" ironbridge
sleep 1
if ! kill -0 "$gw" 2>/dev/null; then
    cat "$DEMO/ironbridge.log" >&2
    die "the gateway exited at start (log above, also in $DEMO/ironbridge.log)"
fi

if ((seconds)); then
    say "running for $seconds s (gateway log: $DEMO/ironbridge.log)"
    end=$((SECONDS + seconds))
    while ((SECONDS < end)); do
        kill -0 "$gw" 2>/dev/null || { tail -n 20 "$DEMO/ironbridge.log" >&2; die "the gateway exited"; }
        sleep 1
    done
else
    say "press Ctrl-C to stop (gateway log: $DEMO/ironbridge.log)"
    while kill -0 "$gw" 2>/dev/null; do sleep 1; done
    tail -n 20 "$DEMO/ironbridge.log" >&2
    die "the gateway exited"
fi
exit 0
