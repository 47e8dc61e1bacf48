"""ibt_config: the configuration builder: YAML text from dicts, and the pieces of a gateway
configuration (north.mqtt, Modbus connections, devices, groups, tags) and its topics.

Part of the integration-test fixtures; tests import them through ibtest (ibtest.py).
"""

import json

from ibt_core import LOOPBACK



def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts and lists of scalars/dicts; flat dicts inside lists whose
    values are all scalars are written in flow style (one tag per line)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                out.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and all(not isinstance(x, (dict, list))
                                              for x in item.values()):
                flow = ", ".join(f"{k}: {_yaml_scalar(x)}" for k, x in item.items())
                out.append(f"{pad}- {{ {flow} }}")
            elif isinstance(item, dict):
                sub = to_yaml(item, indent + 2).splitlines()
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def mqtt_section(broker=None, pki=None, url=None, ca=None, cert=None, key=None,
                 allow_insecure=None, qos=1, topic=None, status_topic=None):
    """north.mqtt as a dict: mqtts://localhost:PORT with the PKI's CA unless told otherwise."""
    if url is None:
        url = f"mqtts://localhost:{broker.port}"
    m = {"url": url}
    if allow_insecure is not None:
        m["allow_insecure"] = allow_insecure
    tls = {}
    if ca is None and pki is not None and url.startswith("mqtts"):
        ca = pki.ca
    if ca is not None:
        tls["ca"] = str(ca)
    if cert is not None:
        tls["cert"] = str(cert)
    if key is not None:
        tls["key"] = str(key)
    if tls:
        m["tls"] = tls
    m["qos"] = qos
    if topic:
        m["topic"] = topic
    if status_topic:
        m["status_topic"] = status_topic
    return m


def modbus_connection(name, port, devices, timeout_ms=1000):
    return {"name": name, "plugin": "modbus", "host": LOOPBACK, "port": port,
            "timeout_ms": timeout_ms, "devices": devices}


def gateway_config(mqtt, connections, gateway_id="test-gw", log_level="debug"):
    """The whole config file text from a north.mqtt dict and a list of connections."""
    cfg = {"gateway": {"id": gateway_id}, "log": {"level": log_level},
           "north": {"mqtt": mqtt}, "connections": connections}
    return to_yaml(cfg) + "\n"


def data_topic(gateway="test-gw", device="+", group="+"):
    return f"ironbridge/{gateway}/{device}/{group}"


def status_topic(gateway="test-gw"):
    return f"ironbridge/{gateway}/status"


def tag(name, table, address, type=None, **kw):
    t = {"name": name, "table": table, "address": address}
    if type is not None:
        t["type"] = type
    t.update(kw)
    return t


def group(name, tags, interval_ms=200):
    return {"name": name, "interval_ms": interval_ms, "tags": tags}


def device(name, groups, unit_id=1, byte_order=None):
    d = {"name": name, "unit_id": unit_id}
    if byte_order:
        d["byte_order"] = byte_order
    d["groups"] = groups
    return d
