"""The install test: the Debian packages on a real Debian 12 with systemd 252 as PID 1.

Run through tests/install/run.sh, which builds the packages and the simulator first. Steps, in
order (each prints PASS, FAIL or BLOCKED with its duration):

  root       debootstrap a minimal Debian 12 root (with mosquitto from Debian for the test)
  boot       boot systemd in it: own PID, mount, network, IPC, UTS and cgroup namespaces, so its
             loopback is private; probe the unit's mount-namespace options and lift, by a
             runtime drop-in, exactly those that cannot run on this machine (226/NAMESPACE)
  install    apt-get install the .deb files (dependencies from Debian); the service is enabled
             and active (running), idle, with the idle STATUS; user, state dir, sandbox
  sdk        pkg-config ironbridge-plugin; a plugin built from the -dev package's headers
             alone is accepted by the packaged daemon
  security   systemd-analyze verify, and security --offline=true on the installed unit: <= 2.0
  run        a configuration with the simulator and mosquitto: active (running), STATUS in
             systemctl status, data at the broker
  journal    journalctl -u ironbridge IB_DEVICE=... / IB_CONNECTION=... / IB_TAG=...
  reload     systemctl reload applies a configuration change without a restart
  remote     a signed configuration document over MQTT under the shipped unit (/etc read-only):
             applied and kept in /var/lib/ironbridge/remote, still in force after a restart,
             its replay refused; --check includes it; removed again for the next steps
  watchdog   SIGSTOP of the daemon gets it killed by the watchdog and restarted
  upgrade    a newer package keeps the edited conffile and the state directory
  stop       systemctl stop ends it cleanly (exit status 0, "offline" published)
  purge      apt-get purge leaves nothing behind

Exit status 0 when no step failed (BLOCKED steps are listed, not counted as passes), 1 when
one did, 2 for a usage error. The root, systemd and everything in it are removed at the end,
also after a failure or a signal (IB_KEEP=1 keeps the root directory for inspection;
IB_HOLD_AFTER=STEP keeps the root running after STEP until a person lets it go on).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ibtest
from ibtest import Failure, check, wait_until

ROOT_TESTDIR = "/opt/ib-test"          # inside the root: the test's own files
SIM_PORT = 15020                       # on the root's private loopback
MQTT_PORT = 1883                       # Debian's mosquitto default (loopback only)
GATEWAY_ID = "ib-install"
SUITE = "bookworm"
WATCHDOG_WAIT_S = 120                  # WatchdogSec=30s, RestartSec=5s, plus slack

# Unit options that need a mount namespace, and the values that lift them.
MOUNT_NS_OPTIONS = {
    "ProtectSystem": "no", "ProtectHome": "no", "PrivateTmp": "no", "PrivateDevices": "no",
    "PrivateMounts": "no", "ProtectKernelTunables": "no", "ProtectKernelModules": "no",
    "ProtectKernelLogs": "no", "ProtectControlGroups": "no", "ProtectProc": "default",
    "ProcSubset": "all", "ProtectHostname": "no", "ReadWritePaths": "", "ReadOnlyPaths": "",
    "InaccessiblePaths": "", "ExecPaths": "", "NoExecPaths": "", "TemporaryFileSystem": "",
    "BindPaths": "", "BindReadOnlyPaths": "", "MountAPIVFS": "no",
}

# Units of a stock Debian root that would touch the host (its consoles, kernel modules, clock)
# or only add noise; masked before the boot.
MASKED_UNITS = [
    "getty.target", "getty@.service", "serial-getty@.service", "getty-static.service",
    "console-getty.service", "container-getty@.service", "systemd-modules-load.service",
    "kmod-static-nodes.service", "modprobe@.service", "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount", "hwclock.service", "sys-kernel-config.mount",
    "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-fs-fuse-connections.mount",
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
    "fstrim.timer", "systemd-tmpfiles-clean.timer",
]

# Run inside the new namespaces, before systemd: the root becomes a mount point (so services
# can get mount namespaces), with a fresh /proc, a read-only /sys and /proc/sys, and a /dev of
# its own holding only the pseudo devices (never the host's consoles or disks).
BOOT_SCRIPT = r"""
set -e
R=$1
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=755,nosuid tmpfs "$R/dev"
for n in null zero full random urandom tty; do
    touch "$R/dev/$n"
    mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
exec env -i container=ironbridge-install-test /usr/sbin/chroot "$R" /lib/systemd/systemd --system
"""

DROPPED_CAPS = "-sys_module,-sys_time,-sys_boot,-syslog,-wake_alarm,-sys_rawio"

SIM_MAP = """\
# ironbridge install test: two devices behind one Modbus TCP endpoint.
holding  0    uint16   AB    ramp  0 1 65535     # press-3 speed
holding  1    uint16   AB    const 4800          # press-3 setpoint (used by the reload step)
holding  2    float32  ABCD  const nan           # press-4 temperature: a broken sensor (IB_TAG)
size holding 100                                 # press-4 'missing' at 150: exception 2
"""


def log(msg):
    print(msg, flush=True)


def run_host(argv, timeout=600, check_rc=True, env=None, what=None):
    """Runs a command on the host; returns its stdout; raises Failure with its output."""
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if check_rc and r.returncode != 0:
        raise Failure(f"{what or ' '.join(argv)}: exit status {r.returncode}\n"
                      f"{r.stdout[-4000:]}")
    return r.stdout


def default_mirror():
    """The Debian mirror of the host's apt configuration that serves bookworm."""
    if os.environ.get("IB_DEBIAN_MIRROR"):
        return os.environ["IB_DEBIAN_MIRROR"]
    srcs = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for f in srcs:
        for stanza in f.read_text().split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if SUITE in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
    lists = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for f in lists:
        if f.exists():
            for line in f.read_text().splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", line)
                if m:
                    return m.group(1)
    return "http://deb.debian.org/debian"


def proxy_env():
    return {k: v for k, v in os.environ.items() if k.lower() in ("http_proxy", "https_proxy")}


# ---------------------------------------------------------------- cgroups of the booted root

class Cgroups:
    """A fresh child of the test's own cgroup in every mounted hierarchy, for systemd of the
    root to own: two runs side by side never share a cgroup, and the host's are not touched."""

    def __init__(self, name):
        self.name = name
        self.dirs = []

    @staticmethod
    def _mounts():
        out = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            pre, _, post = line.partition(" - ")
            fstype, _, opts = post.split(" ", 2)
            if fstype in ("cgroup", "cgroup2"):
                out.append((fstype, pre.split(" ")[4], set(opts.split(","))))
        return out

    def create(self):
        mounts = self._mounts()
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            if ctrls == "":
                mnt = next((m for t, m, _ in mounts if t == "cgroup2"), None)
            else:
                want = set(ctrls.split(","))
                mnt = next((m for t, m, o in mounts if t == "cgroup" and want <= o), None)
            if mnt is None:
                continue
            d = Path(mnt + path.rstrip("/")) / self.name
            d.mkdir(exist_ok=True)
            if "cpuset" in ctrls.split(","):
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (d / f).write_text((d.parent / f).read_text())
            self.dirs.append(d)
        check(self.dirs, "no cgroup hierarchy is mounted")

    def enter(self):
        """Moves the calling process into every one of them (from a child before exec)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self):
        """rmdir depth-first; the kernel frees a cgroup a moment after its last process."""
        for d in self.dirs:
            for _ in range(50):
                if not d.exists():
                    break
                for sub in sorted((p for p in d.rglob("*") if p.is_dir()),
                                  key=lambda p: len(p.parts), reverse=True):
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
                try:
                    d.rmdir()
                except OSError:
                    time.sleep(0.1)
            if d.exists():
                log(f"warning: could not remove cgroup {d}")


# ---------------------------------------------------------------- the booted root

class Root:
    def __init__(self, path, mirror, logdir):
        self.path = Path(path)
        self.mirror = mirror
        self.logdir = Path(logdir)
        self.cg = Cgroups(self.path.parent.name)   # the work dir's unique name
        self.proc = None     # the unshare process
        self.pid = None      # systemd, PID 1 of the root, as the host sees it

    # -- building and booting

    def debootstrap(self, include):
        # In a mount and PID namespace of its own, killed with us: whatever debootstrap mounts
        # or starts dies with it, also when it is interrupted.
        with open(self.logdir / "debootstrap.log", "w") as logf:
            r = subprocess.run(
                ["setpriv", "--pdeathsig", "KILL", "--",
                 "unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
                 "--propagation", "private", "debootstrap",
                 "--variant=minbase", "--include=" + ",".join(include),
                 # the host's package cache, shared with tests/cleanroot/run.sh
                 "--cache-dir=/var/cache/apt/archives", SUITE,
                 str(self.path), self.mirror],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **proxy_env()}, timeout=900)
        if r.returncode != 0:
            raise Failure(f"debootstrap failed (exit status {r.returncode}):\n"
                          f"{ibtest.tail(self.logdir / 'debootstrap.log', 30)}")

    def prepare(self):
        unitdir = self.path / "etc/systemd/system"
        for u in MASKED_UNITS:
            link = unitdir / u
            if link.exists() or link.is_symlink():
                link.unlink()
            link.symlink_to("/dev/null")
        (self.path / "etc/hostname").write_text("ib-install-test\n")
        (self.path / "etc/hosts").write_text("127.0.0.1 localhost ib-install-test\n"
                                             "::1 localhost ip6-localhost\n")

    def boot(self):
        self.cg.create()
        logf = open(self.logdir / "systemd-console.log", "w")
        argv = ["setpriv", "--pdeathsig", "KILL", "--",
                "unshare", "--fork", "--pid", "--mount", "--net", "--uts", "--ipc", "--cgroup",
                "--propagation", "private", "--kill-child",
                "setpriv", "--bounding-set", DROPPED_CAPS, "--inh-caps", DROPPED_CAPS, "--",
                "/bin/bash", "-c", BOOT_SCRIPT, "boot", str(self.path)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, preexec_fn=self.cg.enter)
        logf.close()

        def systemd_pid():
            if self.proc.poll() is not None:
                return -1
            try:
                kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
                pid = int(kids.split()[0])
                if os.readlink(f"/proc/{pid}/exe").endswith("/lib/systemd/systemd"):
                    return pid
            except (OSError, IndexError, ValueError):
                pass
            return None

        pid = wait_until(systemd_pid, 30)
        check(pid and pid > 0, "systemd did not start in the root:\n"
              + ibtest.tail(self.logdir / "systemd-console.log", 30))
        self.pid = pid

        def booted():
            r = self.sh("systemctl is-system-running", check_rc=False).strip()
            return r if r in ("running", "degraded") else None

        state = wait_until(booted, 90, interval=0.5)
        check(state, "systemd in the root did not finish booting: "
              + self.sh("systemctl list-jobs --no-pager", check_rc=False))
        if state == "degraded":
            log("     note: the root booted degraded:\n"
                + self.sh("systemctl --failed --no-pager", check_rc=False))

    def shutdown(self):
        if self.proc is None:
            return
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)   # PID 1 of the namespace: all of it dies
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.cg.remove()

    def remove(self):
        """Deletes the root directory, but never while anything is mounted below it."""
        mounted = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                   if f" {self.path}/" in line or f" {self.path} " in line]
        if mounted:
            log(f"warning: not removing {self.path}: still mounted:\n" + "\n".join(mounted))
            return
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.path)], check=False)

    # -- commands inside

    def cmd(self, argv, net=False):
        """argv as run in the root: its PID and mount namespace, its root and working
        directory; with net=True also in its network namespace (its loopback)."""
        ns = ["nsenter", "-t", str(self.pid), "-p", "-m", "-r", "-w"] + (["-n"] if net else [])
        env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8",
               "DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]
        env += [f"{k}={v}" for k, v in proxy_env().items()]
        return ns + env + list(argv)

    def sh(self, script, net=False, check_rc=True, timeout=300):
        return run_host(self.cmd(["/bin/sh", "-c", script], net=net), timeout=timeout,
                        check_rc=check_rc, what=f"in the root: {script}")

    def write(self, rel, text, mode=0o644):
        p = self.path / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.chmod(p, mode)

    def show(self, unit, prop):
        return self.sh(f"systemctl show -p {prop} --value {unit}", check_rc=False).strip()

    def journal(self, args):
        """journalctl -o json entries as dicts."""
        out = self.sh(f"journalctl --no-pager -o json {args}", check_rc=False)
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# ---------------------------------------------------------------- the test

class Blocked(Exception):
    """A step that cannot pass until another issue lands: reported, never counted as a pass."""


class InstallTest:
    def __init__(self, args):
        self.args = args
        self.debs = sorted(Path(args.debs).glob("*.deb"))
        self.work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ib-install-"))
        check(not any(self.work.iterdir()), f"{self.work} is not empty")
        self.root = Root(self.work / "root", args.mirror, self.work)
        self.results = []
        self.config_text = None

    # -- helpers

    def deb(self, package):
        for d in self.debs:
            if d.name.startswith(package + "_"):
                return d
        raise Failure(f"no {package}_*.deb in {self.args.debs}")

    def service_active(self):
        r = self.root
        return (r.show("ironbridge", "ActiveState") == "active"
                and r.show("ironbridge", "SubState") == "running")

    def wait_active(self, timeout=30, what="the service"):
        ok = wait_until(self.service_active, timeout, interval=0.3)
        check(ok, f"{what} is not active (running) after {timeout} s:\n" + self.diagnose())

    def status_text(self):
        return self.root.show("ironbridge", "StatusText")

    def wait_status(self, pattern, timeout=20):
        got = wait_until(lambda: re.search(pattern, self.status_text()), timeout, interval=0.3)
        check(got, f"STATUS never matched /{pattern}/ within {timeout} s; it is "
              f"'{self.status_text()}'\n" + self.diagnose())

    def main_pid(self):
        return int(self.root.show("ironbridge", "MainPID") or 0)

    def proc_status(self, pid):
        text = self.root.sh(f"cat /proc/{pid}/status")
        return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)

    def diagnose(self):
        r = self.root
        return ("--- systemctl status ironbridge:\n"
                + r.sh("systemctl status --no-pager -l ironbridge", check_rc=False)
                + "--- journalctl -u ironbridge (last 30):\n"
                + r.sh("journalctl --no-pager -u ironbridge -n 30", check_rc=False))

    def mqtt_messages(self, topic, count, timeout_s):
        """Up to `count` messages of `topic` from the root's mosquitto, as (topic, payload)."""
        out = self.root.sh(f"mosquitto_sub -h 127.0.0.1 -p {MQTT_PORT} -v -t '{topic}' "
                           f"-C {count} -W {timeout_s} || true", net=True,
                           timeout=timeout_s + 10)
        msgs = []
        for line in out.splitlines():
            t, _, payload = line.partition(" ")
            if t.startswith("ironbridge/"):
                msgs.append((t, payload))
        return msgs

    def data(self, device, count=4, timeout_s=10):
        out = []
        for _, payload in self.mqtt_messages(ibtest.data_topic(GATEWAY_ID, device), count,
                                             timeout_s):
            try:
                out.append(json.loads(payload))
            except ValueError:
                raise Failure(f"not JSON from {device}: {payload[:200]}")
        return out

    def write_config(self, extra_press3_tags=()):
        press3 = [ibtest.tag("speed", "holding", 0, "uint16")] + list(extra_press3_tags)
        press4 = [ibtest.tag("temperature", "holding", 2, "float32"),
                  ibtest.tag("missing", "holding", 150, "uint16")]
        cfg = ibtest.gateway_config(
            ibtest.mqtt_section(url=f"mqtt://127.0.0.1:{MQTT_PORT}", allow_insecure=True),
            [{"name": "press-hall", "plugin": "modbus", "host": "127.0.0.1", "port": SIM_PORT,
              "devices": [ibtest.device("press-3", [ibtest.group("status", press3, 500)], 1),
                          ibtest.device("press-4", [ibtest.group("status", press4, 500)], 2)]}],
            gateway_id=GATEWAY_ID, log_level="info")
        self.root.write("/etc/ironbridge/ironbridge.yaml", cfg)
        return cfg

    # -- steps

    def step_root(self):
        t0 = time.monotonic()
        self.root.debootstrap(["systemd", "systemd-sysv", "mosquitto", "mosquitto-clients",
                               "pkgconf"])
        ibtest.note(f"debootstrap {SUITE} from {self.root.mirror}: "
                    f"{time.monotonic() - t0:.0f} s")
        self.root.prepare()
        r = self.root.path
        dst = r / ROOT_TESTDIR.lstrip("/")
        (dst / "debs").mkdir(parents=True)
        for d in self.debs:
            shutil.copy2(d, dst / "debs")
        shutil.copy2(self.args.sim, dst / "ironbridge-sim")
        (dst / "sim.map").write_text(SIM_MAP)

    def step_boot(self):
        self.root.boot()
        ibtest.note("systemd " + self.root.sh("systemctl --version | head -n1").strip()
                    + f" is PID 1 of the root (host pid {self.root.pid})")
        self.root.sh("apt-get update -q", timeout=300)
        self.lift_mount_namespace_options()
        # mosquitto from Debian, on the root's own loopback.
        self.root.sh("systemctl is-active mosquitto || systemctl start mosquitto")
        self.root.write("/etc/systemd/system/ib-sim.service", (
            "[Unit]\nDescription=ironbridge install test: Modbus simulator\n"
            f"[Service]\nExecStart={ROOT_TESTDIR}/ironbridge-sim --map {ROOT_TESTDIR}/sim.map "
            f"--port {SIM_PORT} --quiet\n"))
        self.root.sh("systemctl daemon-reload")
        # Before the install: what exists, so that purge can be checked against it.
        self.files_before = set(self.root.sh("find / -xdev -print").splitlines())

    def lift_mount_namespace_options(self):
        """Probes each mount-namespace option of the shipped unit with a one-shot unit; those
        that fail with 226/NAMESPACE here are lifted by a runtime drop-in (in /run, so that it
        is not a file the purge check could find), and printed."""
        unit = run_host(["sh", "-c", f"dpkg-deb --fsys-tarfile '{self.deb('ironbridge')}' | "
                         "tar -xOf - ./lib/systemd/system/ironbridge.service"])
        options = [(k, v) for k, v in re.findall(r"^(\w+)=(.*)$", unit, re.M)
                   if k in MOUNT_NS_OPTIONS]
        check(options, "the shipped unit has no mount-namespace option at all?")
        failing = []
        for i, (k, v) in enumerate(options):
            name = f"ib-probe-{i}.service"
            self.root.write(f"/run/systemd/system/{name}",
                            f"[Service]\nType=oneshot\nExecStart=/bin/true\n{k}={v}\n")
            self.root.sh("systemctl daemon-reload")
            self.root.sh(f"systemctl start {name} || true")
            status = self.root.show(name, "ExecMainStatus")
            result = self.root.show(name, "Result")
            if result != "success":
                check(status == "226", f"probe of {k}={v} failed with {result}/{status}, not "
                      "226/NAMESPACE:\n" + self.root.sh(f"journalctl -u {name} --no-pager",
                                                        check_rc=False))
                failing.append(k)
            (self.root.path / f"run/systemd/system/{name}").unlink()
        if failing:
            body = "".join(f"{k}={MOUNT_NS_OPTIONS[k]}\n" for k in failing)
            self.root.write("/run/systemd/system/ironbridge.service.d/"
                            "50-install-test-no-mount-namespace.conf",
                            "# This machine cannot give a service a mount namespace in the "
                            "test root (226/NAMESPACE).\n[Service]\n" + body)
            ibtest.note("lifted by a drop-in (226/NAMESPACE on this machine): "
                        + ", ".join(failing))
        else:
            ibtest.note(f"all {len(options)} mount-namespace options of the unit work here; "
                        "the shipped unit runs unchanged")
        self.root.sh("systemctl daemon-reload")

    def step_install(self):
        debs = " ".join(f"{ROOT_TESTDIR}/debs/{d.name}" for d in
                        (self.deb("ironbridge"), self.deb("ironbridge-dev")))
        out = self.root.sh(f"apt-get install -y --no-install-recommends {debs}", timeout=600)
        pulled = re.search(r"The following NEW packages will be installed:\n((?:  .*\n)+)", out)
        if pulled:
            ibtest.note("apt-get installed: " + " ".join(pulled.group(1).split()))
        r = self.root
        check(r.sh("systemctl is-enabled ironbridge", check_rc=False).strip() == "enabled",
              "the service is not enabled after the install")
        self.wait_active(what="the freshly installed service")
        self.wait_status(r"^idle: nothing configured yet in /etc/ironbridge/ironbridge\.yaml")
        status = self.status_text()
        ex = re.search(r"examples in (\S+?),", status)
        check(ex, f"the idle STATUS names no examples folder: {status}")
        r.sh(f"test -f {ex.group(1)}/modbus-tcp.yaml")
        out = r.sh("systemctl status --no-pager -l ironbridge", check_rc=False)
        check("Status: \"idle: nothing configured yet" in out,
              f"systemctl status does not show the idle status line:\n{out}")
        ibtest.note(f"STATUS: {status}")
        # The user, the state directory and the sandbox as the kernel sees them.
        uid = r.sh("id -u ironbridge").strip()
        dialout = r.sh("getent group dialout | cut -d: -f3").strip()
        st = self.proc_status(self.main_pid())
        check(st["Uid"].split()[0] == uid, f"the daemon runs as uid {st['Uid']}, not {uid}")
        check(dialout in st["Groups"].split(), f"dialout ({dialout}) not in {st['Groups']}")
        check(st["NoNewPrivs"].strip() == "1", "NoNewPrivs is not set")
        check(st["Seccomp"].strip() == "2", "no seccomp filter")
        check(int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0,
              f"capabilities: effective {st['CapEff']}, bounding {st['CapBnd']}")
        state = r.sh("stat -c '%U:%G %a' /var/lib/ironbridge").strip()
        check(state == "ironbridge:ironbridge 700", f"/var/lib/ironbridge is {state}")
        conf = r.sh("stat -c '%U:%G %a' /etc/ironbridge/ironbridge.yaml").strip()
        ibtest.note(f"runs as ironbridge (uid {uid}) with dialout, no capabilities, "
                    f"NoNewPrivs, seccomp; /var/lib/ironbridge {state}; ironbridge.yaml {conf}")

    def step_sdk(self):
        r = self.root
        plugindir = r.sh("pkg-config --variable=plugindir ironbridge-plugin").strip()
        abi = r.sh("pkg-config --variable=abi_major ironbridge-plugin").strip() + "." + \
            r.sh("pkg-config --variable=abi_minor ironbridge-plugin").strip()
        # pkg-config leaves out -I/usr/include (a system directory) unless asked not to.
        cflags = r.sh("PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 pkg-config --cflags "
                      "ironbridge-plugin").strip()
        check(cflags == "-I/usr/include", f"cflags: '{cflags}'")
        r.sh(f"test -f {plugindir}/modbus.so")
        r.sh(f"test -f {plugindir}/s7.so")
        r.sh(f"test -f {plugindir}/opcua.so")
        r.sh(f"test -f {os.path.dirname(plugindir)}/metrics-http.so")  # the private HTTP module
        r.sh("ironbridge-opcua-browse --help > /dev/null && "
             "ls /usr/share/man/man1/ironbridge-opcua-browse.1*")
        helptext = r.sh("ironbridge --help")
        check(f"(default: {plugindir}" in helptext,
              f"the daemon's default plugin dir is not {plugindir}:\n{helptext}")
        # A plugin built against the -dev package's headers alone (unpacked on the host, with
        # pkg-config's sysroot pointing there), loaded by the packaged daemon.
        dev = self.work / "dev"
        run_host(["dpkg-deb", "-x", str(self.deb("ironbridge-dev")), str(dev)])
        pcdir = next(dev.glob("usr/lib/*/pkgconfig"))
        env = {"PATH": os.environ["PATH"], "PKG_CONFIG_LIBDIR": str(pcdir),
               "PKG_CONFIG_SYSROOT_DIR": str(dev)}
        host_cflags = run_host(["pkg-config", "--cflags", "ironbridge-plugin"], env=env).split()
        out = r.path / ROOT_TESTDIR.lstrip("/") / "sdk-plugin"
        out.mkdir()
        run_host(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                  "-fvisibility=hidden", *host_cflags, '-DPLUGIN_NAME="sdkcheck"',
                  "-o", str(out / "sdkcheck.so"), str(self.args.sdk_plugin_source)],
                 what="building a plugin with the -dev package's headers")
        listed = r.sh(f"ironbridge --list-plugins --plugin-dir {ROOT_TESTDIR}/sdk-plugin")
        check(re.search(r"^sdkcheck \S+ \(ABI " + re.escape(abi), listed, re.M),
              f"the packaged daemon did not accept the SDK-built plugin:\n{listed}")
        ibtest.note(f"pkg-config ironbridge-plugin: {cflags}, plugindir {plugindir}, ABI {abi}; "
                    "a plugin built from the -dev headers loads")

    def step_security(self):
        # The unit as systemd 252 parses it: no unknown or misspelt setting, binaries present.
        # (man pages are not looked up: the minimal root has no man-db.)
        out = self.root.sh("systemd-analyze verify --man=no ironbridge.service 2>&1",
                           check_rc=False).strip()
        check(out == "", f"systemd-analyze verify ironbridge.service:\n{out}")
        out = self.root.sh("systemd-analyze security --offline=true --no-pager "
                           "/lib/systemd/system/ironbridge.service", check_rc=False)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        check(m, f"no exposure figure:\n{out}")
        ibtest.note(f"exposure of the installed unit: {m.group(1)} (limit 2.0)")
        check(float(m.group(1)) <= 2.0, f"exposure {m.group(1)} is above 2.0")

    def step_run(self):
        r = self.root
        r.sh("systemctl start ib-sim")
        self.config_text = self.write_config()
        out = r.sh("ironbridge --check")
        check(re.search(r": valid: 1 file, gateway ib-install, 1 connections, 2 devices, .*"
                        r"config sha256 [0-9a-f]{64}", out), out)
        r.sh("systemctl restart ironbridge")
        self.wait_active()
        self.wait_status(r"^connections 1/1 up, \d+ values/s, broker connected, queue \d+ "
                         r"records, \d+ dropped$")
        out = r.sh("systemctl status --no-pager -l ironbridge", check_rc=False)
        line = next((ln.strip() for ln in out.splitlines() if "Status:" in ln), None)
        check(line and "connections 1/1 up" in line,
              f"systemctl status shows no status line:\n{out}")
        ibtest.note(line)
        msgs = self.data("press-3")
        check(msgs, "no data from press-3 at the broker within 10 s\n" + self.diagnose())
        v = msgs[-1]["values"]["speed"]
        check(v.get("q") == "good" and isinstance(v.get("v"), int), f"press-3 speed: {v}")
        ibtest.note(f"{len(msgs)} messages from press-3, last speed {v['v']}")
        # The status line follows the plant: the device gone, then back.
        r.sh("systemctl stop ib-sim")
        self.wait_status(r"^connections 0/1 up")
        r.sh("systemctl start ib-sim")
        self.wait_status(r"^connections 1/1 up", timeout=40)
        ibtest.note("STATUS went to 'connections 0/1 up' with the simulator stopped, and back")

    def step_journal(self):
        r = self.root
        # press-4's broken sensor (a NaN) and its missing register are logged with fields.
        got = wait_until(lambda: r.journal("-u ironbridge IB_TAG=temperature"), 15, 0.5)
        check(got, "no journal entry with IB_TAG=temperature\n" + self.diagnose())
        dev = r.journal("-u ironbridge IB_DEVICE=press-4")
        check(dev, "journalctl -u ironbridge IB_DEVICE=press-4 selects nothing")
        check(all(e.get("IB_DEVICE") == "press-4" and e.get("IB_CONNECTION") == "press-hall"
                  for e in dev), f"IB_DEVICE=press-4 selected other entries: {dev}")
        check(any("missing" in e.get("MESSAGE", "") or "150" in e.get("MESSAGE", "")
                  for e in dev), f"no entry about press-4's missing register: {dev}")
        conn = r.journal("-u ironbridge IB_CONNECTION=press-hall")
        every = r.journal("-u ironbridge")
        check(len(conn) >= len(dev) and len(every) > len(conn),
              f"field selection: {len(every)} entries, {len(conn)} of press-hall, "
              f"{len(dev)} of press-4")
        check(not r.journal("-u ironbridge IB_DEVICE=press-3 IB_TAG=temperature"),
              "press-3 has entries about press-4's tag")
        text = r.sh("journalctl --no-pager -u ironbridge IB_DEVICE=press-4 -o short")
        ibtest.note(f"{len(every)} entries; IB_CONNECTION=press-hall {len(conn)}, "
                    f"IB_DEVICE=press-4 {len(dev)}, IB_TAG=temperature {len(got)}; e.g.\n"
                    + "\n".join("       " + ln for ln in text.splitlines()[-2:]))

    def step_reload(self):
        """The configuration gains a tag; `systemctl reload` must bring it into the data
        without restarting the daemon."""
        r = self.root
        pid = self.main_pid()
        self.write_config([ibtest.tag("setpoint", "holding", 1, "uint16")])
        r.sh("systemctl reload ironbridge")
        problem = None
        seen = wait_until(lambda: any("setpoint" in m["values"]
                                      for m in self.data("press-3", 2, 3)), 12, 0)
        if not seen:
            problem = "no message with the new tag 'setpoint' within 12 s of the reload"
        elif self.main_pid() != pid:
            problem = f"the daemon was restarted (pid {pid} -> {self.main_pid()}), not reloaded"
        elif not self.service_active():
            problem = "the service is not active after the reload"
        if problem is not None:
            raise Failure(problem + "\n" + self.diagnose())
        said = r.sh("journalctl --no-pager -u ironbridge SYSLOG_IDENTIFIER=ironbridge -o cat",
                    check_rc=False)
        if "configuration applied (SIGHUP)" not in said:
            raise Failure("the journal does not say that the reload applied the configuration")

    def config_status(self):
        msgs = self.mqtt_messages(f"ironbridge/{GATEWAY_ID}/config", 1, 3)
        try:
            return json.loads(msgs[0][1]) if msgs else {}
        except ValueError:
            raise Failure(f"config status is not JSON: {msgs[0][1][:200]}")

    def wait_config_status(self, pred, what, timeout=20):
        got = wait_until(lambda: pred(self.config_status()), timeout, 0.5)
        check(got, f"config status never {what}: {self.config_status()}\n" + self.diagnose())

    def step_remote(self):
        """Issue 15 #2: under ProtectSystem=strict /etc/ironbridge is read-only; the applied
        document must be kept in the state directory and survive a restart."""
        r = self.root
        t = r.path / ROOT_TESTDIR.lstrip("/")
        run_host(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(t / "ops.key")])
        run_host(["openssl", "pkey", "-in", str(t / "ops.key"), "-pubout", "-out",
                  str(t / "ops.pub")])
        os.chmod(t / "ops.pub", 0o644)
        base = self.write_config()
        remote = ibtest.to_yaml({"remote_config": {"enabled": True,
                                                   "public_key": f"{ROOT_TESTDIR}/ops.pub"}})
        r.write("/etc/ironbridge/ironbridge.yaml", base + remote + "\n")
        r.sh("systemctl reload ironbridge")
        self.wait_config_status(lambda s: s.get("result") == "applied" and
                                s.get("remote_version") == 0, "applied with remote_version 0")
        time.sleep(1)  # the north subscribed to the config topic at its restart
        doc = ibtest.to_yaml({"connections": [{
            "name": "annex", "plugin": "modbus", "host": "127.0.0.1", "port": SIM_PORT,
            "devices": [ibtest.device("press-9", [ibtest.group(
                "status", [ibtest.tag("speed", "holding", 0, "uint16")], 500)], 1)]}]})
        r.write(f"{ROOT_TESTDIR}/doc1.yaml", doc + "\n")
        r.sh(f"ironbridge --sign-config {ROOT_TESTDIR}/doc1.yaml --key {ROOT_TESTDIR}/ops.key "
             f"--sign-version 1 > {ROOT_TESTDIR}/doc1.signed")
        pub = (f"mosquitto_pub -h 127.0.0.1 -p {MQTT_PORT} -q 1 "
               f"-t ironbridge/{GATEWAY_ID}/config-set -f {ROOT_TESTDIR}/doc1.signed")
        r.sh(pub, net=True)
        self.wait_config_status(lambda s: s.get("result") == "applied" and
                                s.get("remote_version") == 1, "applied with remote_version 1")
        kept = "/var/lib/ironbridge/remote/50-remote.yaml"
        owner = r.sh(f"stat -c '%U %a' {kept}").strip()
        check(owner == "ironbridge 600", f"{kept}: owner and mode {owner}")
        check(r.sh("test -e /etc/ironbridge/conf.d/50-remote.yaml && echo yes || echo no")
              .strip() == "no", "the document was written to /etc/ironbridge/conf.d")
        check(self.data("press-9", 2, 10), "no data from the document's device press-9\n"
              + self.diagnose())
        pid = self.main_pid()
        before = self.config_status().get("applied_at", 0)
        r.sh("systemctl restart ironbridge")
        self.wait_active(what="the restarted service")
        check(self.main_pid() != pid, "the service was not restarted")
        self.wait_config_status(lambda s: s.get("result") == "applied" and
                                s.get("remote_version") == 1 and
                                s.get("applied_at", 0) > before,
                                "remote_version 1 from the restarted daemon")
        check(self.data("press-9", 2, 10), "after the restart the document is not in force: no "
              "data from press-9\n" + self.diagnose())
        out = r.sh("ironbridge --check")
        check(f"signed configuration version 1 included from {kept}" in out,
              f"--check does not include the kept document: {out}")
        time.sleep(1)  # its subscription
        r.sh(pub, net=True)
        self.wait_config_status(lambda s: s.get("result") == "rejected" and
                                "not newer" in " ".join(s.get("errors", [])),
                                "rejected as a replay after the restart")
        # Back to the configuration of the next steps: no document, no remote_config.
        r.sh(f"rm {kept}")
        self.write_config()
        r.sh("systemctl reload ironbridge")
        self.wait_status(r"^connections 1/1 up")
        ibtest.note(f"document version 1 kept in {kept} ({owner}), in force after a restart "
                    "(data from its device), replay refused; --check includes it")

    def watchdog_age(self):
        """Seconds since systemd last received WATCHDOG=1 (the root shares the host's
        CLOCK_MONOTONIC)."""
        ts = int(self.root.show("ironbridge", "WatchdogTimestampMonotonic") or 0)
        return time.monotonic() - ts / 1e6 if ts else None

    def step_watchdog(self):
        r = self.root
        # First: the daemon feeds the watchdog regularly (else the kill below proves nothing).
        ages = []
        for _ in range(3):
            ages.append(self.watchdog_age())
            time.sleep(1.5)
        check(all(a is not None and a < 2.5 for a in ages),
              f"systemd saw no regular WATCHDOG=1: seconds since the last one {ages}")
        pid = self.main_pid()
        restarts = int(r.show("ironbridge", "NRestarts") or 0)
        wd = r.show("ironbridge", "WatchdogUSec")
        t0 = time.monotonic()
        r.sh(f"kill -STOP {pid}")
        new = wait_until(lambda: self.main_pid() not in (0, pid) and self.service_active(),
                         WATCHDOG_WAIT_S, 0.5)
        dt = time.monotonic() - t0
        check(new, f"the stopped daemon (pid {pid}) was not restarted within "
              f"{WATCHDOG_WAIT_S} s\n" + self.diagnose())
        check(int(r.show("ironbridge", "NRestarts")) == restarts + 1,
              f"NRestarts is {r.show('ironbridge', 'NRestarts')}, was {restarts}")
        kills = [e for e in r.journal("-u ironbridge")
                 if "Watchdog timeout" in e.get("MESSAGE", "")]
        check(kills, "no 'Watchdog timeout' in the journal")
        t_kill = int(kills[-1]["__MONOTONIC_TIMESTAMP"]) / 1e6 - t0
        check(t_kill > 25, f"the watchdog fired {t_kill:.1f} s after the SIGSTOP, before "
              f"WatchdogSec={wd} could have passed: the pings had stopped earlier")
        self.wait_status(r"^connections 1/1 up")
        ibtest.note(f"pings every ~1 s; SIGSTOP of pid {pid}: 'Watchdog timeout' ({wd}) after "
                    f"{t_kill:.1f} s, running again as pid {self.main_pid()} after {dt:.1f} s")

    def step_upgrade(self):
        r = self.root
        conf = "/etc/ironbridge/ironbridge.yaml"
        before = r.sh(f"sha256sum {conf}").split()[0]
        r.sh("install -o ironbridge -g ironbridge -m 600 /dev/null /var/lib/ironbridge/keep-me "
             "&& echo state > /var/lib/ironbridge/keep-me")
        pid = self.main_pid()
        # The same package with a higher version: the upgrade path of dpkg and the maintainer
        # scripts, with the packaged conffile unchanged and the installed one edited.
        old = self.deb("ironbridge")
        unpacked = self.work / "upgrade"
        run_host(["dpkg-deb", "-R", str(old), str(unpacked)])
        control = (unpacked / "DEBIAN/control").read_text()
        version = re.search(r"^Version: (\S+)$", control, re.M).group(1)
        newv = version + "+ibtest1"
        (unpacked / "DEBIAN/control").write_text(control.replace(f"Version: {version}",
                                                                 f"Version: {newv}"))
        newdeb = r.path / ROOT_TESTDIR.lstrip("/") / "debs" / f"ironbridge_{newv}_upgrade.deb"
        run_host(["dpkg-deb", "--root-owner-group", "-b", str(unpacked), str(newdeb)])
        r.sh(f"apt-get install -y {ROOT_TESTDIR}/debs/{newdeb.name}")
        got = r.sh("dpkg-query -W -f='${Version}' ironbridge").strip()
        check(got == newv, f"installed version {got}, expected {newv}")
        check(r.sh(f"sha256sum {conf}").split()[0] == before, f"the upgrade changed {conf}")
        leftovers = r.sh("ls /etc/ironbridge").split()
        check(leftovers == ["conf.d", "ironbridge.yaml"],
              f"/etc/ironbridge after the upgrade: {leftovers}")
        check(r.sh("cat /var/lib/ironbridge/keep-me").strip() == "state",
              "the state directory lost its file in the upgrade")
        self.wait_active(what="the upgraded service")
        check(self.main_pid() != pid, "the service was not restarted by the upgrade")
        self.wait_status(r"^connections 1/1 up")
        ibtest.note(f"{version} -> {newv}: edited {conf} and /var/lib/ironbridge kept; "
                    "service restarted")

    def step_stop(self):
        r = self.root
        r.sh("systemctl stop ironbridge")
        check(r.show("ironbridge", "ActiveState") == "inactive",
              f"ActiveState {r.show('ironbridge', 'ActiveState')}")
        res, code = r.show("ironbridge", "Result"), r.show("ironbridge", "ExecMainStatus")
        check(res == "success" and code == "0", f"stop: Result={res}, exit status {code}\n"
              + self.diagnose())
        status = self.mqtt_messages(ibtest.status_topic(GATEWAY_ID), 1, 5)
        check(status and status[0][1] == "offline", f"status topic after stop: {status}")
        last = r.sh("journalctl --no-pager -u ironbridge -n 4 -o cat").strip().splitlines()
        ibtest.note(f"stopped: exit status 0, '{status[0][1]}' retained; journal ends: "
                    + " | ".join(last[-3:]))

    def step_purge(self):
        r = self.root
        r.sh("apt-get purge -y ironbridge ironbridge-dev")
        r.sh("systemctl daemon-reload")
        check(r.sh("dpkg -l | grep ironbridge || true").strip() == "",
              "dpkg still lists an ironbridge package")
        load = r.show("ironbridge", "LoadState")
        check(load == "not-found", f"systemd still knows the unit: LoadState={load}")
        after = set(r.sh("find / -xdev -print").splitlines())
        new = sorted(p for p in after - self.files_before
                     if "ironbridge" in p and not p.startswith(ROOT_TESTDIR))
        check(not new, "left behind after purge:\n  " + "\n  ".join(new))
        for p in ("/etc/ironbridge", "/var/lib/ironbridge"):
            check(r.sh(f"test -e {p} && echo yes || echo no").strip() == "no", f"{p} exists")
        user = r.sh("getent passwd ironbridge || true").strip()
        ibtest.note("no file left; the system user stays, as Debian does for system users: "
                    + (user or "(no user)"))

    # -- runner

    def run(self):
        steps = [self.step_root, self.step_boot, self.step_install, self.step_sdk,
                 self.step_security, self.step_run, self.step_journal, self.step_reload,
                 self.step_remote, self.step_watchdog, self.step_upgrade, self.step_stop, self.step_purge]
        needed = {"root", "boot", "install"}   # nothing after them can run without them
        t_all = time.monotonic()
        try:
            for fn in steps:
                name = fn.__name__[5:]
                log(f"---- {name}")
                t0 = time.monotonic()
                try:
                    fn()
                    self.results.append((name, "PASS", ""))
                    log(f"PASS {name} ({time.monotonic() - t0:.1f}s)")
                except Blocked as e:
                    self.results.append((name, "BLOCKED", str(e)))
                    log(f"BLOCKED {name} ({time.monotonic() - t0:.1f}s): {e}")
                except Exception as e:
                    reason = str(e) if isinstance(e, Failure) else \
                        f"{type(e).__name__}: {e}\n{__import__('traceback').format_exc()}"
                    self.results.append((name, "FAIL", reason))
                    first, _, rest = reason.partition("\n")
                    log(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {first}")
                    if rest:
                        log(rest)
                    if name in needed:
                        break
                if os.environ.get("IB_HOLD_AFTER") == name:
                    self.hold()
        finally:
            self.cleanup()
        n = {k: sum(1 for _, s, _ in self.results if s == k) for k in ("PASS", "FAIL", "BLOCKED")}
        log(f"install test: {n['PASS']} passed, {n['FAIL']} failed, {n['BLOCKED']} blocked "
            f"(not counted as passed) in {time.monotonic() - t_all:.0f} s")
        for name, s, why in self.results:
            if s == "BLOCKED":
                log(f"  BLOCKED {name}: {why}")
        return 1 if n["FAIL"] or len(self.results) < len(steps) else 0

    def hold(self):
        """IB_HOLD_AFTER=step: keep the root running after that step, for a person to look
        around, until the file named here is removed."""
        flag = self.work / "held"
        flag.touch()
        log(f"     held after this step; enter the root with\n"
            f"       nsenter -t {self.root.pid} -p -m -r -w -n /bin/bash\n"
            f"     and continue with: rm {flag}")
        while flag.exists():
            time.sleep(1)

    def cleanup(self):
        self.root.shutdown()
        keep = os.environ.get("IB_KEEP") == "1"
        if keep:
            log(f"     (root kept in {self.root.path}; remove it with rm -rf "
                f"--one-file-system {self.work})")
        else:
            self.root.remove()
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--debs", required=True, help="folder with ironbridge_*.deb and "
                    "ironbridge-dev_*.deb")
    ap.add_argument("--sim", required=True, help="the ironbridge-sim executable")
    ap.add_argument("--sdk-plugin-source", required=True,
                    help="C source of a minimal plugin (tests/unit/abi/abi_plugin.c)")
    ap.add_argument("--mirror", default=default_mirror(), help="Debian mirror for debootstrap")
    ap.add_argument("--work", help="an empty folder for the root and the logs (default: a new "
                    "/tmp/ib-install-*); its name also names the cgroups made for the root")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("install test: must run as root (debootstrap, namespaces, mounts)",
              file=sys.stderr)
        return 2
    for tool in ("debootstrap", "unshare", "nsenter", "setpriv", "dpkg-deb", "cc",
                 "pkg-config"):
        if not shutil.which(tool):
            print(f"install test: {tool} not found", file=sys.stderr)
            return 1
    # meson or CI may stop us with SIGTERM (ibtest turns it into SystemExit), a terminal with
    # SIGHUP or SIGINT: every one of them must still clean up.
    signal.signal(signal.SIGHUP, lambda signum, frame: sys.exit(128 + signum))
    return InstallTest(args).run()


if __name__ == "__main__":
    sys.exit(main())
