"""nginx in front of several Dynamo frontends: the config file (templates/nginx.conf.j2) and command.

Every value that reaches the config is validated first (hosts, ports, integers) and paths are
quoted; anything that could break nginx syntax raises ConfigError. nginx runs in the foreground with
its pid, temp directories and logs inside `run_dir`:

    conf = render_nginx_conf("10.0.0.1", 8000, [("10.0.0.2", 8001), ("10.0.0.3", 8001)], "/logs/nginx")
    Path("/logs/nginx/nginx.conf").write_text(conf)
    subprocess.Popen(nginx_command("/logs/nginx/nginx.conf", "/logs/nginx"))
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence

from .errors import ConfigError
from .templating import render

_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
# Characters that end or escape an nginx token, start a comment or a variable, or break a line.
_PATH_FORBIDDEN = set("\"'\\;{}$#`") | {chr(c) for c in range(32)} | {"\x7f"}

TEMP_PATH_DIRECTIVES = ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
                        "uwsgi_temp_path", "scgi_temp_path")


def validate_host(host: object, *, key: str = "host") -> str:
    """An IPv4/IPv6 address or an RFC 1123 host name (underscores tolerated); else ConfigError."""
    if isinstance(host, str) and host and "%" not in host:
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
        if len(host) <= 253 and all(_HOST_LABEL.match(label) for label in host.split(".")):
            return host
    raise ConfigError("not an IP address or host name", key=key, value=host,
                      hint="use an address such as 127.0.0.1 or a host name of letters, digits, '-', '.'")


def validate_port(port: object, *, key: str = "port") -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"port must be an integer in 1..65535, got {port!r}", key=key, value=port)
    return port


def _validate_int(value: object, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"must be an integer in {low}..{high}, got {value!r}", key=key, value=value)
    return value


def validate_path(path: object, *, key: str = "path") -> str:
    """An absolute path without characters that could break nginx syntax; returned normalised."""
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text.startswith("/"):
        raise ConfigError("must be an absolute path", key=key, value=path)
    bad = sorted({c for c in text if c in _PATH_FORBIDDEN})
    if bad:
        raise ConfigError(f"path contains characters nginx cannot take safely: {bad!r}", key=key,
                          value=path, hint="choose a directory without quotes, ;, {, }, $, # or control characters")
    return os.path.normpath(text)


def _quoted(path: str) -> str:
    """nginx double-quoted string (validate_path already excluded quotes and backslashes)."""
    return f'"{path}"'


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def render_nginx_conf(listen_host: str, listen_port: int, upstreams: Sequence[tuple[str, int]], run_dir: str,
                      *, worker_processes: int | str = "auto", worker_connections: int = 65536,
                      worker_rlimit_nofile: int | None = None, upstream_keepalive: int = 512,
                      timeout_s: int = 86400, listen_backlog: int = 4096, access_log: bool = False,
                      extra_listen_ports: Sequence[int] = (), affinity_header: str | None = None) -> str:
    """nginx.conf text: listen on listen_host:listen_port, round-robin over `upstreams` (frontends).

    worker_rlimit_nofile defaults to 2 x worker_connections + 1024 (client + upstream per stream).
    access_log=True writes RUN_DIR/access.log (buffered) with the upstream of each request.
    extra_listen_ports: more ports on listen_host serving the same (backend.nginx_listen_ports).
    affinity_header: requests carrying that header go to the frontend its value hashes to
    (consistent hashing); requests without it are spread by their request id.
    """
    listen_host = validate_host(listen_host, key="nginx.listen_host")
    listen_port = validate_port(listen_port, key="nginx.listen_port")
    ports = [listen_port] + [validate_port(p, key=f"nginx.extra_listen_ports[{i}]")
                             for i, p in enumerate(extra_listen_ports)]
    if len(set(ports)) != len(ports):
        raise ConfigError("nginx listen ports repeat", key="nginx.extra_listen_ports", value=ports)
    run_dir = validate_path(run_dir, key="nginx.run_dir")
    if isinstance(upstreams, (str, bytes)) or not isinstance(upstreams, Sequence) or not upstreams:
        raise ConfigError("nginx needs at least one upstream (host, port)", key="nginx.upstreams", value=upstreams)
    servers: list[str] = []
    for i, item in enumerate(upstreams):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ConfigError("each upstream must be a (host, port) pair", key=f"nginx.upstreams[{i}]", value=item)
        server = _hostport(validate_host(item[0], key=f"nginx.upstreams[{i}].host"),
                           validate_port(item[1], key=f"nginx.upstreams[{i}].port"))
        if server in servers:
            raise ConfigError(f"upstream {server} listed twice", key=f"nginx.upstreams[{i}]", value=item)
        servers.append(server)
    if worker_processes != "auto":
        _validate_int(worker_processes, "nginx.worker_processes", 1, 1024)
    worker_connections = _validate_int(worker_connections, "nginx.worker_connections", 16, 1 << 20)
    if worker_rlimit_nofile is None:
        worker_rlimit_nofile = 2 * worker_connections + 1024
    worker_rlimit_nofile = _validate_int(worker_rlimit_nofile, "nginx.worker_rlimit_nofile", 64, 1 << 22)
    return render(
        "nginx.conf.j2",
        affinity_var=_affinity_var(affinity_header),
        worker_processes=worker_processes,
        worker_connections=worker_connections,
        worker_rlimit_nofile=worker_rlimit_nofile,
        upstream_keepalive=_validate_int(upstream_keepalive, "nginx.upstream_keepalive", 1, 1 << 20),
        timeout_s=_validate_int(timeout_s, "nginx.timeout_s", 1, 10 * 365 * 86400),
        listen_backlog=_validate_int(listen_backlog, "nginx.listen_backlog", 1, 1 << 20),
        listens=[_hostport(listen_host, p) for p in ports],
        upstream_servers=servers,
        pid_path=_quoted(f"{run_dir}/nginx.pid"),
        error_log_path=_quoted(f"{run_dir}/error.log"),
        access_log_path=_quoted(f"{run_dir}/access.log") if access_log else None,
        temp_paths=[(d, _quoted(f"{run_dir}/{d.removesuffix('_path')}")) for d in TEMP_PATH_DIRECTIVES],
    )


def nginx_command(conf_path: str, run_dir: str, *, nginx: str = "nginx") -> list[str]:
    """`nginx -e RUN_DIR/error.log -p RUN_DIR/ -c CONF`: foreground (the conf says daemon off)."""
    conf_path = validate_path(conf_path, key="nginx.conf_path")
    run_dir = validate_path(run_dir, key="nginx.run_dir")
    return [nginx, "-e", f"{run_dir}/error.log", "-p", f"{run_dir}/", "-c", conf_path]


def nginx_test_command(conf_path: str, run_dir: str, *, nginx: str = "nginx") -> list[str]:
    """`nginx -t` on the same file: checks syntax (and opens the logs) without serving."""
    return [*nginx_command(conf_path, run_dir, nginx=nginx), "-t", "-q"]


def _affinity_var(header: str | None) -> str | None:
    """nginx's variable of a request header (`X-Session-ID` -> `$http_x_session_id`)."""
    if header is None:
        return None
    if not isinstance(header, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", header):
        raise ConfigError("a session-affinity header name is letters, digits and '-' (like X-Dynamo-Session-ID)",
                          key="backend.nginx_session_affinity_header", value=header)
    return "$http_" + header.lower().replace("-", "_")
