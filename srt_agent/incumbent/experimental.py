"""Converter handlers for srt-slurm's router-experiment keys (its qwen3-32b router-comparison
recipes): Dynamo's event plane, native-engine sidecars and external routing-policy crates, and the
frontend type, among them the experimental Rust SGL router built from source. mapping.py has their
rows; extras.py registers these handlers.

What the incumbent does with them, and what srtctl does:
- `dynamo.event_plane` (zmq | nats): srt-slurm sets DYN_EVENT_PLANE, the Dynamo runtime's
  transport for KV-cache events and load metrics, on every Dynamo frontend and worker; srtctl
  sets the same variable on every worker and frontend.
- `dynamo.sidecar: true`: srt-slurm starts each worker leader as SGLang's own server with its
  native gRPC port (`python3 -m sglang.launch_server ... --grpc-port P`) coupled to Dynamo's
  sidecar (`python3 -m dynamo.sglang.sidecar --grpc-endpoint 127.0.0.1:P`) instead of the Python
  worker `dynamo.sglang`. srtctl's workers are `dynamo.sglang`; it has no sidecar launch, so true
  is refused (false is srt-slurm's default and accepted).
- `dynamo.policy_catalog`: srt-slurm builds an external routing-policy crate (git, rev,
  crate_subdir, package) into Dynamo through its `custom-policy` cargo feature and passes `config`
  to the router. srtctl installs Dynamo from a version or a git ref with pip, without cargo
  features: refused.
- `frontend.type: sgl-router` with `frontend.source` / `frontend.binary`: SGLang's experimental
  Rust router (`experimental/sgl-router`), which srt-slurm builds with `cargo build --release` in
  the given source checkout and starts as `<source>/target/release/sgl-router --worker-urls ...`
  (policy `cache_aware_zmq` reads the workers' ZMQ KV events). srtctl's router frontend is the
  sglang_router package (`python -m sglang_router.launch_router`), a different program: refused,
  never replaced by it (the recipes compare routers).
"""

from __future__ import annotations

from typing import Any

EVENT_PLANES = ("zmq", "nats")
EXPERIMENTAL_ROUTER = "sgl-router"
ROUTER_FRONTENDS = ("sglang", "sglangrouter", "sglang-router", "sglang_router")  # srtctl's sglang router


def event_plane(c, e, path, value) -> None:
    if value is None:
        return
    if value not in EVENT_PLANES:
        c.refuse(path, f"dynamo.event_plane {value!r}: Dynamo's event plane is one of {', '.join(EVENT_PLANES)}",
                 hint="use zmq (workers publish KV events over ZMQ) or nats")
        return
    # the recipe's own `environment.DYN_EVENT_PLANE` wins, as under srt-slurm (its global environment
    # is applied after the variable)
    c.extra.setdefault("environment", {}).setdefault("DYN_EVENT_PLANE", str(value))


def sidecar(c, e, path, value) -> None:
    if value is False or value is None:
        return
    c.refuse(path, "dynamo.sidecar: true runs each worker as SGLang's own server (sglang.launch_server with its "
             "native --grpc-port) coupled to Dynamo's sidecar (python3 -m dynamo.sglang.sidecar --grpc-endpoint), "
             "in place of the dynamo.sglang worker; srtctl's workers are dynamo.sglang and it has no sidecar launch",
             hint="remove dynamo.sidecar (srtctl then runs the dynamo.sglang worker srt-slurm runs by default), "
                  "or keep this recipe on srt-slurm")


def policy_catalog(c, e, path, value) -> None:
    c.refuse(path, "dynamo.policy_catalog builds an external routing-policy crate into Dynamo (its custom-policy "
             "cargo feature) and passes its config to the router; srtctl installs Dynamo from a version or a git "
             "ref with pip and builds no cargo features or policy crates",
             hint="remove dynamo.policy_catalog (Dynamo's own router-mode then selects workers), or keep this "
                  "recipe on srt-slurm")


def frontend_type(c, e, path, value) -> None:
    """dynamo -> nginx + Dynamo frontends, sglang -> srtctl's sglang router; sgl-router is refused."""
    if value == "dynamo":
        c.put(("backend", "use_sglang_router"), False, path)
    elif value in ROUTER_FRONTENDS:
        c.put(("backend", "use_sglang_router"), True, path)
    elif value != EXPERIMENTAL_ROUTER:
        c.refuse(path, f"frontend type {value!r} has no equivalent in srtctl",
                 hint="use dynamo (nginx + Dynamo frontends) or sglang (the sglang router)")
    else:
        _refuse_experimental_router(c, path)


def _refuse_experimental_router(c, path) -> None:
    c.refuse(path, "frontend type 'sgl-router' is SGLang's experimental Rust router (experimental/sgl-router), "
             "which srt-slurm builds from frontend.source with cargo and starts as <source>/target/release/"
             "sgl-router; srtctl's router is the sglang_router package (python -m sglang_router.launch_router), "
             "a different program without its policies (e.g. cache_aware_zmq), and srtctl does not build or run "
             "the experimental one", hint="use frontend.type: sglang for srtctl's sglang router (and its policies, "
             "e.g. policy: cache_aware), without frontend.source, or keep this recipe on srt-slurm")


def router_source(c, e, path, value) -> None:
    c.refuse(path, f"'{'.'.join(path)}' has no equivalent in srtctl: {e.note}",
             hint="remove it (srtctl's sglang router comes from the container's sglang_router package)")


HANDLERS: dict[str, Any] = {
    "dynamo.event_plane": event_plane,
    "dynamo.sidecar": sidecar,
    "dynamo.policy_catalog": policy_catalog,
    "frontend.type": frontend_type,
    "frontend.source": router_source,
    "frontend.binary": router_source,
}
