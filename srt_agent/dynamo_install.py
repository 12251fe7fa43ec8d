"""Install ai-dynamo for a worker without breaking the container's own packages (stdlib only).

Run by a process's launch script with the container's (or host's) own Python:

    python3 dynamo_install.py --version 0.7.0 --cache-root /srtctl/.cache --image IMAGE --record REC.json

- The container already has ai-dynamo==VERSION: nothing is installed; prints that Python's path.
- Else a virtual environment created from that Python with `--system-site-packages` (plus a .pth to
  the parent's site-packages when that Python is itself a venv) gets `pip install ai-dynamo==V
  ai-dynamo-runtime==V`: pip adds only what is missing or conflicting. Every package added or
  replaced is printed and written to the record (JSON) the agent copies into status.json.
- The environment is cached under CACHE_ROOT, keyed by Dynamo version, image, Python version and
  machine architecture; built under an exclusive lock in a temporary directory and published by
  rename, so a half-built cache is never used. Later workers and jobs reuse it.

stdout carries one line, the Python to run the process with; messages go to stderr (the log).
pip reads its index from the usual places (PIP_INDEX_URL, pip.conf).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

LIST_DISTS = ("import importlib.metadata as m, json, sys\n"
              "seen = {}\n"
              "for d in m.distributions():\n"
              "    n = (d.metadata['Name'] or '').lower().replace('_', '-')\n"
              "    if n and n not in seen: seen[n] = d.version\n"
              "json.dump({'dists': seen, 'python': '%d.%d' % sys.version_info[:2], 'prefix': sys.prefix,\n"
              "           'base_prefix': sys.base_prefix, 'site': __import__('site').getsitepackages()}, sys.stdout)\n")
RECORD_NAME = "srt-install.json"


def say(msg: str) -> None:
    print(f"[srt] dynamo: {msg}", file=sys.stderr, flush=True)


def describe(python: str) -> dict:
    out = subprocess.run([python, "-c", LIST_DISTS], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


DYNAMO_GIT = "https://github.com/ai-dynamo/dynamo.git"


def requirements(version: str) -> list[str]:
    """pip requirements for a release (`0.7.0`) or a git ref of Dynamo's repository (`git:REF`)."""
    if version.startswith("git:"):
        ref = version[4:]
        return [f"ai-dynamo-runtime @ git+{DYNAMO_GIT}@{ref}#subdirectory=lib/bindings/python",
                f"ai-dynamo @ git+{DYNAMO_GIT}@{ref}"]
    return [f"ai-dynamo=={version}", f"ai-dynamo-runtime=={version}"]


def cache_key(version: str, image: str, python_version: str, arch: str) -> str:
    version = re.sub(r"[^A-Za-z0-9_.-]+", "_", version.replace("git:", "git-"))
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(image.rstrip("/")) or "host")[:40]
    digest = hashlib.sha256(image.encode()).hexdigest()[:12]
    return f"ai-dynamo-{version}-{tag}-{digest}-py{python_version}-{arch}"


def diff(before: dict[str, str], after: dict[str, str]) -> tuple[list[dict], list[dict]]:
    added = [{"name": n, "version": v} for n, v in sorted(after.items()) if n not in before]
    replaced = [{"name": n, "from": before[n], "to": v} for n, v in sorted(after.items())
                if n in before and before[n] != v]
    return added, replaced


def _fix_scripts(bin_dir: str, old: str, new: str) -> None:
    """pip wrote console scripts with the temporary path in their #! line: point them at the final one."""
    for name in os.listdir(bin_dir):
        path = os.path.join(bin_dir, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if data.startswith(b"#!" + old.encode()):
            with open(path, "wb") as f:
                f.write(data.replace(old.encode(), new.encode(), 1))


def build(python: str, info: dict, version: str, tmp: str, final: str) -> dict:
    subprocess.run([python, "-m", "venv", "--system-site-packages", "--without-pip", tmp], check=True)
    venv_python = os.path.join(tmp, "bin", "python3")
    if info["prefix"] != info["base_prefix"]:  # the container's python is a venv: keep its packages visible
        site = describe(venv_python)["site"][0]
        with open(os.path.join(site, "_srt_parent_site.pth"), "w") as f:
            f.write("\n".join(info["site"]) + "\n")
    reqs = requirements(version)
    say(f"pip install {' '.join(reqs)} into {final}")
    subprocess.run([venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                    *reqs], check=True,
                   stdout=sys.stderr)
    added, replaced = diff(info["dists"], describe(venv_python)["dists"])
    _fix_scripts(os.path.join(tmp, "bin"), tmp, final)
    return {"version": version, "added": added, "replaced": replaced, "built_at": time.time()}


def install(python: str, version: str, cache_root: str, image: str) -> tuple[str, dict]:
    info = describe(python)
    if info["dists"].get("ai-dynamo") == version:
        say(f"the container already has ai-dynamo {version}; nothing installed")
        return python, {"version": version, "cache": "container", "added": [], "replaced": []}
    key = cache_key(version, image, info["python"], platform.machine())
    final = os.path.join(cache_root, key)
    os.makedirs(cache_root, exist_ok=True)
    with open(final + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record_path = os.path.join(final, RECORD_NAME)
        if os.path.isfile(record_path):
            with open(record_path) as f:
                record = {**json.load(f), "cache": "reused"}
            say(f"reusing {final}")
        else:
            for name in os.listdir(cache_root):  # leftovers of a build that died
                if name.startswith(f".{key}.tmp-"):
                    shutil.rmtree(os.path.join(cache_root, name), ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)  # no record inside: never published completely
            tmp = os.path.join(cache_root, f".{key}.tmp-{os.getpid()}")
            try:
                record = build(python, info, version, tmp, final)
                with open(os.path.join(tmp, RECORD_NAME), "w") as f:
                    json.dump(record, f, indent=1)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            record = {**record, "cache": "built"}
    for item in record["added"]:
        say(f"added {item['name']} {item['version']}")
    for item in record["replaced"]:
        say(f"replaced {item['name']} {item['from']} (container) with {item['to']}")
    if not record["added"] and not record["replaced"]:
        say("no package added or replaced")
    return os.path.join(final, "bin", "python3"), {**record, "env": final, "key": key}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", required=True)
    ap.add_argument("--cache-root", required=True)
    ap.add_argument("--image", default="host", help="container image (part of the cache key)")
    ap.add_argument("--record", help="write what was installed here (JSON), for status.json")
    args = ap.parse_args(argv)
    try:
        python, record = install(sys.executable, args.version, args.cache_root, args.image)
    except subprocess.CalledProcessError as exc:
        say(f"install failed: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}")
        return 1
    if args.record:
        os.makedirs(os.path.dirname(args.record) or ".", exist_ok=True)
        tmp = f"{args.record}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, args.record)
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
