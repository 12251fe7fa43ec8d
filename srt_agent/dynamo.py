"""NVIDIA Dynamo building blocks: the environment, the frontend and mocker commands, /health parsing.

Pure functions: nothing here starts a process. Facts they encode, measured with ai-dynamo 1.6.1:

- Dynamo advertises (and often binds) the first non-loopback interface address unless told the host.
  `DYN_TCP_RPC_HOST` (request plane), `DYN_TCP_RESPONSE_STREAM_HOST` (frontend's response stream),
  `DYN_SYSTEM_HOST` (system/metrics server), `DYN_EVENT_PLANE_HOST` (advertised event address) and
  `DYN_HTTP_RPC_HOST` (mocker's prefill bootstrap address) must all name the node's address.
- The default ZMQ event plane binds `tcp://0.0.0.0:0` whatever DYN_EVENT_PLANE_HOST says (that only
  changes the advertised address). `DYN_EVENT_PLANE=nats` (set on every process: frontends and
  workers must agree) moves events onto NATS, after which every listener is on the given host.
- `DYN_SYSTEM_PORT` is parsed as a signed 16-bit integer: 1..32767 (0 = OS-assigned, -1 = off).
- A worker's system `/health` stays 503 "notready" (mocker) unless
  `DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS=["generate"]` (Dynamo logs it as deprecated, but it is
  what turns the answer to 200 once the `generate` endpoint serves).
- Logs carry ANSI colour codes even when written to a file, unless DYN_SDK_DISABLE_ANSI_LOGGING=1.
- The frontend's `GET /health` answers
  `{"status": "healthy", "endpoints": ["dyn://NS.COMPONENT.ENDPOINT", ...],
    "instances": [{"component": "prefill"|"backend", "endpoint": "generate", "namespace": NS,
                   "instance_id": int, "transport": {"tcp": "HOST:PORT/..."}, ...}, ...]}`
  Decode (and aggregated) workers register as component `backend`, prefill workers as `prefill`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .errors import PlanError
from .nginx import validate_host, validate_port

SYSTEM_PORT_MAX = 32767  # Dynamo reads DYN_SYSTEM_PORT as i16
DEFAULT_NAMESPACE = "dynamo"
PREFILL_COMPONENT = "prefill"
DECODE_COMPONENT = "backend"  # Dynamo's name for decode and aggregated workers

_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://[A-Za-z0-9._~:@\[\]%/-]+$")

Mode = Literal["prefill", "decode"]


def dynamo_env(nats_url: str, etcd_url: str, system_port: int | None, host: str = "127.0.0.1",
               *, event_plane: Literal["nats", "zmq"] = "nats") -> dict[str, str]:
    """Environment for any Dynamo process (frontend or worker) that must bind and advertise `host`.

    `system_port` None leaves the system server off (frontends do not need it); an int enables it
    on `host` and makes its /health follow the `generate` endpoint.
    """
    validate_host(host, key="dynamo.host")
    if event_plane not in ("nats", "zmq"):
        raise PlanError(f"dynamo event plane must be nats or zmq, got {event_plane!r}")
    env = {
        "NATS_SERVER": _check_urls(nats_url, "nats_url", ("nats", "tls")),
        "ETCD_ENDPOINTS": _check_urls(etcd_url, "etcd_url", ("http", "https")),
        "DYN_DISCOVERY_BACKEND": "etcd",
        "DYN_REQUEST_PLANE": "tcp",
        "DYN_EVENT_PLANE": event_plane,
        "DYN_TCP_RPC_HOST": host,
        "DYN_TCP_RESPONSE_STREAM_HOST": host,
        "DYN_EVENT_PLANE_HOST": host,
        "DYN_HTTP_RPC_HOST": host,
        "DYN_SYSTEM_HOST": host,
        "DYN_SDK_DISABLE_ANSI_LOGGING": "1",  # plain log files (colour codes otherwise, even off a tty)
    }
    if system_port is None:
        env["DYN_SYSTEM_PORT"] = "-1"
    else:
        if isinstance(system_port, bool) or not isinstance(system_port, int) or not (
                0 <= system_port <= SYSTEM_PORT_MAX):
            raise PlanError(f"Dynamo system port must be an int in 0..{SYSTEM_PORT_MAX} "
                            f"(Dynamo parses DYN_SYSTEM_PORT as i16), got {system_port!r}")
        env["DYN_SYSTEM_PORT"] = str(system_port)
        env["DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS"] = '["generate"]'
    return env


def dynamo_install_spec(backend) -> str | None:
    """What a launch script installs: a version, `git:REF` (built from source, cached), or nothing."""
    if not backend.dynamo_install:
        return None
    return f"git:{backend.dynamo_git_ref}" if backend.dynamo_git_ref else backend.dynamo_version


def frontend_command(python: str, http_host: str, http_port: int, *, namespace: str | None = None,
                     router_mode: str | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    """`python -m dynamo.frontend` serving the OpenAI API on http_host:http_port."""
    validate_host(http_host, key="frontend.http_host")
    validate_port(http_port, key="frontend.http_port")
    cmd = [_check_python(python), "-m", "dynamo.frontend", "--http-host", http_host, "--http-port", str(http_port)]
    if namespace is not None:
        cmd += ["--namespace", _check_namespace(namespace)]
    if router_mode is not None:
        cmd += ["--router-mode", router_mode]
    return cmd + [str(a) for a in extra_args]


def component_for(mode: Mode | None) -> str:
    """Dynamo component a worker registers as: `prefill`, or `backend` for decode/aggregated."""
    if mode is None or mode == "decode":
        return DECODE_COMPONENT
    if mode == "prefill":
        return PREFILL_COMPONENT
    raise PlanError(f"worker mode must be prefill, decode or None, got {mode!r}")


def mocker_command(python: str, model_path: str, served_model_name: str, mode: Mode | None,
                   namespace: str = DEFAULT_NAMESPACE, *, engine_type: str = "sglang",
                   speedup_ratio: float | None = None, startup_time: float | None = None,
                   extra_args: Sequence[str] = ()) -> list[str]:
    """`python -m dynamo.mocker`: Dynamo's simulated engine (no GPU, no weights; needs a tokenizer dir).

    mode None = aggregated; prefill/decode = disaggregated roles. Registers at
    dyn://NAMESPACE.{prefill|backend}.generate.
    """
    component = component_for(mode)
    if not model_path or "\n" in model_path or "\0" in model_path:
        raise PlanError(f"mocker model path is empty or has control characters: {model_path!r}")
    if not served_model_name or any(c in served_model_name for c in "\n\r\0"):
        raise PlanError(f"served model name is empty or has control characters: {served_model_name!r}")
    cmd = [_check_python(python), "-m", "dynamo.mocker", "--model-path", model_path,
           "--model-name", served_model_name, "--engine-type", engine_type,
           "--endpoint", f"dyn://{_check_namespace(namespace)}.{component}.generate"]
    if mode is not None:
        cmd += ["--disaggregation-mode", mode]
    if speedup_ratio is not None:
        cmd += ["--speedup-ratio", str(float(speedup_ratio))]
    if startup_time is not None:
        cmd += ["--startup-time", str(float(startup_time))]
    return cmd + [str(a) for a in extra_args]


@dataclass(frozen=True)
class FrontendHealth:
    """What a frontend's /health says: its status and `generate` instances per component."""

    status: str
    instances: dict[str, int] = field(default_factory=dict)  # component -> distinct instance ids
    problem: str | None = None  # set when the payload could not be understood

    @property
    def prefill(self) -> int:
        return self.instances.get(PREFILL_COMPONENT, 0)

    @property
    def decode(self) -> int:
        return self.instances.get(DECODE_COMPONENT, 0)

    def has(self, *, prefill: int = 0, decode: int = 0) -> bool:
        """True when healthy and at least the given numbers of workers are registered."""
        return self.status == "healthy" and self.prefill >= prefill and self.decode >= decode


def parse_frontend_health(payload: str | bytes | Mapping, namespace: str | None = None) -> FrontendHealth:
    """Count the `generate` instances a frontend's /health lists, by component.

    Never raises on a bad payload (a frontend that is still starting may answer anything): the
    result then has status "invalid", no instances and `problem` says why.
    """
    try:
        data = json.loads(payload) if isinstance(payload, (str, bytes, bytearray)) else payload
    except ValueError as e:
        return FrontendHealth("invalid", {}, f"not JSON: {e}")
    if not isinstance(data, Mapping):
        return FrontendHealth("invalid", {}, f"expected a JSON object, got {type(data).__name__}")
    status = data.get("status")
    instances = data.get("instances", [])
    if not isinstance(status, str) or not isinstance(instances, list):
        return FrontendHealth("invalid", {}, "missing 'status' string or 'instances' list")
    seen: dict[str, set] = {}
    for inst in instances:
        if not isinstance(inst, Mapping) or inst.get("endpoint") != "generate":
            continue
        if namespace is not None and inst.get("namespace") != namespace:
            continue
        component = inst.get("component")
        if isinstance(component, str):
            seen.setdefault(component, set()).add(inst.get("instance_id"))
    return FrontendHealth(status, {c: len(ids) for c, ids in sorted(seen.items())})


def _check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise PlanError(f"Dynamo namespace must be 1-64 of [A-Za-z0-9_-], got {namespace!r}")
    return namespace


def _check_python(python: str) -> str:
    if not python or any(c in python for c in "\n\r\0"):
        raise PlanError(f"python interpreter path is empty or has control characters: {python!r}")
    return python


def _check_urls(value: str, what: str, schemes: tuple[str, ...]) -> str:
    """One URL or a comma-separated list, each with one of `schemes` and no odd characters."""
    if not isinstance(value, str) or not value:
        raise PlanError(f"{what} must be a non-empty URL, got {value!r}")
    for url in value.split(","):
        if not _URL.match(url) or url.split("://", 1)[0] not in schemes:
            raise PlanError(f"{what}: {url!r} is not a {'/'.join(schemes)}:// URL")
    return value
