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
