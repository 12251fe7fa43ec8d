"""A real Dynamo stack on loopback: NATS + etcd, a prefill and a decode `dynamo.mocker`, two
`dynamo.frontend`s and nginx (from templates/nginx.conf.j2) in front of both.

Streams /v1/completions through nginx and checks that every stream arrives whole, that both
frontends served requests, that the disaggregated path (prefill worker) was used, and that no
process of the stack listens on or talks to anything but loopback.

Needs the cached venv (`scripts/dynamo-venv`, or SRT_DYNAMO_VENV) and nats-server, etcd, nginx.
Skips when they are missing; fails instead when CI=true.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from srt_agent.dynamo import dynamo_env, frontend_command, mocker_command, parse_frontend_health
from srt_agent.nginx import nginx_command, render_nginx_conf

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("SRT_DYNAMO_VENV", "/var/cache/srt-slurm/dynamo-venv-1.6.1"))
PORT_RANGE = range(33000, 35000)  # this test's port range
NAMESPACE = "srtstack"
MODEL = "srt-mock"
REQUESTS = 16
MAX_TOKENS = 24


def _missing(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=f"{VENV}/bin:/usr/sbin:/usr/bin")
    if not found:
        _missing(f"{name} not installed")
    return found


def _free_ports(n: int) -> list[int]:
    """n distinct ports of PORT_RANGE that nothing listens on right now (time-seeded start)."""
    ports: list[int] = []
    start = (os.getpid() * 7919 + int(time.time())) % len(PORT_RANGE)
    for i in range(len(PORT_RANGE)):
        port = PORT_RANGE[(start + i) % len(PORT_RANGE)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError("no free ports")


class Stack:
    """Processes started by the test, each logging to its own file, all stopped at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DYN_", "NATS_", "ETCD_"))}
        full_env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        full_env.update(env or {})
        with open(self.log_dir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def stop(self) -> None:
        """Reverse start order, each waited for, so workers deregister while etcd is still up."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def tails(self) -> str:
        return "\n".join(f"--- {n}.log ---\n{self.log(n)[-1500:]}" for n in self.procs)


async def _wait_until(what: str, check, deadline_s: float, stack: Stack):
    end = time.monotonic() + deadline_s
    last: object = None
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < end:
            stack.check_alive()
            try:
                result = await check(client)
                if result:
                    return result
                last = "not yet"
            except (httpx.TransportError, ValueError, KeyError) as e:
                last = e
            await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not ready after {deadline_s} s (last: {last!r})\n{stack.tails()}")


def _model_dir(path: Path, python: str) -> Path:
    """srt_agent.sim.model_dir (32000-token word vocabulary); run in the venv if `tokenizers`
    is missing from the test interpreter (the Dynamo venv always has it)."""
    try:
        from srt_agent.sim.model_dir import write_model_dir

        return write_model_dir(path)
    except ImportError:
        code = "import sys; from srt_agent.sim.model_dir import write_model_dir; write_model_dir(sys.argv[1])"
        subprocess.run([python, "-c", code, str(path)], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        return path


# ---- loopback audit: every socket of every process of the stack ----------------------------------

def _descendants(pids: set[int]) -> set[int]:
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parent[int(entry.name)] = int(fields[1])
            except (OSError, IndexError):
                continue
    found = set(pids)
    while True:
        more = {p for p, pp in parent.items() if pp in found and p not in found}
        if not more:
            return found
        found |= more


def _addr(hex_addr: str) -> str:
    ip_hex, port_hex = hex_addr.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return f"{ip}:{int(port_hex, 16)}"


def _is_loopback(addr: str) -> bool:
    ip = addr.rsplit(":", 1)[0]
    return ip.startswith(("127.", "::ffff:127.")) or ip == "::1"


def socket_audit(pids: set[int]) -> list[str]:
    """'name: local -> remote' of every inet socket of `pids` (and children) not on loopback."""
    inodes: dict[str, int] = {}
    for pid in _descendants(pids):
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    bad = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            f = line.split()
            local, remote, state, inode = _addr(f[1]), _addr(f[2]), f[3], f[9]
            if inode not in inodes:
                continue
            unconnected = remote.rsplit(":", 1)[1] == "0"
            if not _is_loopback(local) or not (unconnected or _is_loopback(remote)):
                bad.append(f"pid {inodes[inode]} {table} state {state}: {local} -> {remote}")
    return bad


def _counter(metrics: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---- the test ----------------------------------------------------------------------------------------

def test_socket_audit_sees_a_wildcard_listener():
    """The audit itself must be able to fail: a child listening on 0.0.0.0 is reported."""
    code = "import socket,time; s=socket.socket(); s.bind(('0.0.0.0',0)); s.listen(); print('up',flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"up"
        bad = socket_audit({proc.pid})
        assert len(bad) == 1 and "0.0.0.0:" in bad[0], bad
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.dynamo
@pytest.mark.slow
async def test_disaggregated_mocker_behind_nginx_and_two_frontends(tmp_path):
    python = VENV / "bin" / "python"
    if not (VENV / ".srt-dynamo-ready").exists() or not python.exists():
        _missing(f"no Dynamo venv at {VENV} (run scripts/dynamo-venv)")
    nats_bin, etcd_bin, nginx_bin = _binary("nats-server"), _binary("etcd"), _binary("nginx")
    nats_port, nats_mon, etcd_port, etcd_peer, fe_a, fe_b, nginx_port = _free_ports(7)
    model = _model_dir(tmp_path / "model", str(python))
    logs = tmp_path / "logs"
    logs.mkdir()
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    stack = Stack(logs)
    try:
        stack.start("nats", [nats_bin, "-a", "127.0.0.1", "-p", str(nats_port), "-m", str(nats_mon), "-js",
                             "-sd", str(tmp_path / "nats")])
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{etcd_peer}"
        stack.start("etcd", [etcd_bin, "--name", "srt", "--data-dir", str(tmp_path / "etcd"),
                             "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                             "--initial-cluster", f"srt={peer_url}"])

        async def nats_ok(c):
            return (await c.get(f"http://127.0.0.1:{nats_mon}/healthz")).json().get("status") == "ok"

        async def etcd_ok(c):
            return (await c.get(f"{etcd_url}/health")).json().get("health") == "true"

        await _wait_until("nats", nats_ok, 20, stack)
        await _wait_until("etcd", etcd_ok, 20, stack)

        nats_url = f"nats://127.0.0.1:{nats_port}"
        worker_env = dynamo_env(nats_url, etcd_url, system_port=0)  # 0: OS-assigned, read from the log
        for mode in ("prefill", "decode"):
            stack.start(mode, mocker_command(str(python), str(model), MODEL, mode, NAMESPACE,
                                             extra_args=["--speedup-ratio", "10"]), worker_env)
        for name, port in (("frontend-a", fe_a), ("frontend-b", fe_b)):
            stack.start(name, frontend_command(str(python), "127.0.0.1", port),
                        dynamo_env(nats_url, etcd_url, system_port=None))
        conf = nginx_dir / "nginx.conf"
        conf.write_text(render_nginx_conf("127.0.0.1", nginx_port, [("127.0.0.1", fe_a), ("127.0.0.1", fe_b)],
                                          str(nginx_dir), access_log=True))
        stack.start("nginx", nginx_command(str(conf), str(nginx_dir), nginx=nginx_bin))

        t0 = time.monotonic()
        for port in (fe_a, fe_b):
            async def registered(c, port=port):
                health = parse_frontend_health((await c.get(f"http://127.0.0.1:{port}/health")).text,
                                               namespace=NAMESPACE)
                models = (await c.get(f"http://127.0.0.1:{port}/v1/models")).json()["data"]
                return health.has(prefill=1, decode=1) and any(m["id"] == MODEL for m in models) and health

            health = await _wait_until(f"frontend on {port}", registered, 90, stack)
            assert (health.prefill, health.decode) == (1, 1)
            async with httpx.AsyncClient() as c:
                raw = (await c.get(f"http://127.0.0.1:{port}/health")).json()
            advertised = {i["transport"]["tcp"].split("/")[0] for i in raw["instances"]}
            assert advertised and all(a.startswith("127.0.0.1:") for a in advertised), raw
        ready_s = time.monotonic() - t0

        # Worker system servers: /health follows the generate endpoint (DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS).
        for mode in ("prefill", "decode"):
            m = re.search(r"system status server bound to: ([0-9.]+):(\d+)", stack.log(mode))
            assert m, f"{mode}: no system server in the log\n{stack.log(mode)[-2000:]}"
            assert m.group(1) == "127.0.0.1"
            system_url = f"http://{m.group(1)}:{m.group(2)}/health"

            async def system_ready(c, url=system_url):
                r = await c.get(url)
                return r.status_code == 200 and r.json()["status"] == "ready"

            await _wait_until(f"{mode} system /health", system_ready, 20, stack)

        async def nginx_models(c):
            return MODEL in (await c.get(f"http://127.0.0.1:{nginx_port}/v1/models")).text

        await _wait_until("nginx", nginx_models, 20, stack)

        async def one(client: httpx.AsyncClient, i: int) -> dict:
            body = {"model": MODEL, "prompt": f"request {i}: " + "hello world " * (20 + i), "max_tokens": MAX_TOKENS,
                    "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}
            chunks, usage, finish, done, text = 0, None, None, False, ""
            async with client.stream("POST", f"http://127.0.0.1:{nginx_port}/v1/completions", json=body) as r:
                assert r.status_code == 200, await r.aread()
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    assert not done, "data after [DONE]"
                    if line == "data: [DONE]":
                        done = True
                        continue
                    event = json.loads(line[6:])
                    for choice in event.get("choices", []):
                        chunks += 1 if choice.get("text") else 0
                        text += choice.get("text") or ""
                        finish = choice.get("finish_reason") or finish
                    usage = event.get("usage") or usage
            return {"done": done, "usage": usage, "finish": finish, "chunks": chunks, "text": text}

        async with httpx.AsyncClient(timeout=60) as client:
            results = await asyncio.gather(*(one(client, i) for i in range(REQUESTS)))
        for i, res in enumerate(results):
            assert res["done"], (i, res)
            assert res["usage"] and res["usage"]["completion_tokens"] == MAX_TOKENS, (i, res)
            assert res["usage"]["prompt_tokens"] > 20, (i, res)
            assert res["finish"] == "length" and res["chunks"] == MAX_TOKENS and res["text"].strip(), (i, res)

        served = {}
        async with httpx.AsyncClient(timeout=5) as client:
            for name, port in (("frontend-a", fe_a), ("frontend-b", fe_b)):
                metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                served[name] = _counter(metrics, "dynamo_frontend_requests_total", endpoint="completions",
                                        request_type="stream", status="success")
                # The disaggregated path: this frontend routed prefill work to the prefill worker.
                assert 'worker_type="prefill"' in metrics, f"{name} never used the prefill worker"
        assert sum(served.values()) == REQUESTS and min(served.values()) > 0, served

        bad = socket_audit({p.pid for p in stack.procs.values()})
        assert not bad, "sockets off loopback:\n" + "\n".join(bad)
        sys.stderr.write(f"stack ready {ready_s:.1f} s after start of workers; served {served}\n")
    finally:
        stack.stop()
    access = (nginx_dir / "access.log").read_text()
    assert access.count(f"upstream=127.0.0.1:{fe_a}") > 0 and access.count(f"upstream=127.0.0.1:{fe_b}") > 0
