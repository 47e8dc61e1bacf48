"""Fixtures for ironbridge's integration tests: real mosquitto, real Modbus servers, the daemon.

Standard library only; run with /usr/bin/python3 (Debian's pymodbus is importable only there).
Every process started here listens on 127.0.0.1 only and is stopped when its context ends,
when a test ends (the runner stops what the test left running) and at exit (atexit, SIGTERM).

This file is the one name tests import (`import ibtest`, `from ibtest import X`); the fixtures
live in one module per job beside it:

    ibt_core     Failure/check, paths, prerequisites, ports, waiting, tails, notes
    ibt_procs    the registry of started fixtures, stop_all, the session dir, base classes
    ibt_pki      Pki (openssl), session_pki, tls_handshake
    ibt_broker   Mosquitto, Subscriber, Message, topic_matches, retained
    ibt_modbus   Simulator, PymodbusServer/RtuServer, SocatPtyPair/TcpBridge, SilentServer,
                 modbus_client
    ibt_gateway  Gateway, run_check, run_once, sanitizer_report, NotifySocket, is_data, sample,
                 wait_sample
    ibt_config   to_yaml, mqtt_section, modbus_connection, gateway_config, tag/group/device,
                 data_topic, status_topic
    ibt_proxy    CuttableProxy
    ibt_runner   run
"""

from ibt_core import *  # noqa: F401,F403
from ibt_procs import *  # noqa: F401,F403
from ibt_pki import *  # noqa: F401,F403
from ibt_broker import *  # noqa: F401,F403
from ibt_modbus import *  # noqa: F401,F403
from ibt_gateway import *  # noqa: F401,F403
from ibt_config import *  # noqa: F401,F403
from ibt_proxy import *  # noqa: F401,F403
from ibt_runner import *  # noqa: F401,F403

# The fixtures' own helpers (_Proc, _SocketThread, ...) that tests of plugins subclass: a star
# import leaves out names that start with an underscore, so hand those on too.
import ibt_broker as _m_broker  # noqa: E402
import ibt_config as _m_config  # noqa: E402
import ibt_core as _m_core  # noqa: E402
import ibt_gateway as _m_gateway  # noqa: E402
import ibt_modbus as _m_modbus  # noqa: E402
import ibt_pki as _m_pki  # noqa: E402
import ibt_procs as _m_procs  # noqa: E402
import ibt_proxy as _m_proxy  # noqa: E402
import ibt_runner as _m_runner  # noqa: E402

for _mod in (_m_core, _m_procs, _m_pki, _m_broker, _m_modbus, _m_gateway, _m_config, _m_proxy,
             _m_runner):
    for _name in dir(_mod):
        if _name.startswith("_") and not _name.startswith("__") and _name not in globals():
            globals()[_name] = getattr(_mod, _name)
