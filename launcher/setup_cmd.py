"""`make setup ARCH=...`: write srtslurm.yaml, then install NATS/etcd into <srtctl_root>/bin.

    python -m launcher.setup_cmd --arch aarch64|x86_64 [--yes] [--account A] [--partition P]
                                 [--gpus-per-node N] [--time-limit T] [--force] ...

Cluster settings come, in this order, from flags, environment variables (SRTCTL_ACCOUNT,
SRTCTL_PARTITION, SRTCTL_GPUS_PER_NODE, SRTCTL_TIME_LIMIT), answers typed at the prompts, and
finally the defaults (restricted, batch, 4, 4:00:00). Prompts are shown on a terminal; when
stdin is a pipe, answers are read from it line by line (a missing line means "default"); when
nothing arrives, the defaults are used without waiting. `--yes` skips the prompts entirely.
The prompts and srtslurm.yaml come first; when the NATS/etcd fetch fails afterwards, the error says
how to retry only the binaries (`make setup-binaries`, i.e. `--binaries-only`).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


from srt_agent.cluster_config import CLUSTER_FILE_NAME, check_time_limit, load_cluster_config
from srt_agent.errors import ConfigError, SetupError, SrtError
from srt_agent.templating import render

from . import binaries

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_NAME = "srtslurm.yaml.j2"
MANIFEST_ENV = "SRT_BINARIES_MANIFEST"
ARCHES = ("aarch64", "x86_64", "arm64", "amd64")  # the last two: aliases (`uname -m` on some systems)
PIPE_WAIT_SECONDS = 0.5

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,+@-]{0,127}$")


# --------------------------------------------------------------------------- settings


def _slurm_name(what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.strip()
        if not _NAME_RE.match(value):
            raise ValueError(f"{what} must be letters, digits and _ . , + @ - (got {value!r})")
        return value
    return check


def _gpus(value: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ValueError(f"GPUs per node must be a whole number (got {value!r})") from None
    if not 1 <= n <= 64:
        raise ValueError(f"GPUs per node must be between 1 and 64 (got {n})")
    return n


def _time_limit(value: str) -> str:
    value = str(value).strip()
    check_time_limit(value)
    return value


@dataclass(frozen=True)
class Setting:
    key: str          # key in srtslurm.yaml
    label: str        # prompt text, as in docs/installation.md
    default: str
    env: str
    flag: str         # argparse dest
    parse: Callable[[str], object]


SETTINGS = (
    Setting("default_account", "SLURM account", "restricted", "SRTCTL_ACCOUNT", "account",
            _slurm_name("SLURM account")),
    Setting("default_partition", "SLURM partition", "batch", "SRTCTL_PARTITION", "partition",
            _slurm_name("SLURM partition")),
    Setting("gpus_per_node", "GPUs per node", "4", "SRTCTL_GPUS_PER_NODE", "gpus_per_node", _gpus),
    Setting("default_time_limit", "Time limit", "4:00:00", "SRTCTL_TIME_LIMIT", "time_limit", _time_limit),
)


# --------------------------------------------------------------------------- prompting


def _stdin_fd() -> int | None:
    try:
        fd = sys.stdin.fileno()
        os.fstat(fd)
        return fd
    except (AttributeError, ValueError, OSError):
        return None


def _read_line_fd(fd: int, wait: float) -> str | None:
    """One line from a non-terminal stdin without Python's buffering, or None if nothing comes.

    Reads byte by byte so that each prompt consumes exactly one line of piped input, and gives up
    after `wait` seconds of silence so an idle pipe never blocks setup.
    """
    buf = bytearray()
    deadline = time.monotonic() + wait
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return buf.decode(errors="replace") if buf else None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return buf.decode(errors="replace") if buf else None
        ch = os.read(fd, 1)
        if not ch:  # EOF
            return buf.decode(errors="replace") if buf else None
        if ch == b"\n":
            return buf.decode(errors="replace")
        buf += ch


class Prompter:
    """Ask questions on a terminal, read them from a pipe, or answer with defaults."""

    def __init__(self, *, assume_yes: bool, out: Callable[[str], None] = print) -> None:
        self.assume_yes = assume_yes
        self.out = out
        self.fd = _stdin_fd()
        self.tty = self.fd is not None and os.isatty(self.fd)
        self.pipe_open = self.fd is not None and not self.tty

    @property
    def interactive(self) -> bool:
        return self.tty and not self.assume_yes

    def _raw(self, question: str) -> str | None:
        if self.assume_yes:
            return None
        if self.tty:
            try:
                return input(question)
            except EOFError:
                return None
        if not self.pipe_open or self.fd is None:
            return None
        line = _read_line_fd(self.fd, PIPE_WAIT_SECONDS)
        if line is None:
            self.pipe_open = False  # EOF or silence: defaults from here on, no more waiting
        return line

    def ask(self, setting: Setting) -> tuple[object, str]:
        question = f"{setting.label} [{setting.default}]: "
        while True:
            raw = self._raw(question)
            answer = (raw or "").strip()
            source = "prompt" if answer else "default"
            try:
                value = setting.parse(answer or setting.default)
            except ValueError as exc:
                if self.tty and not self.assume_yes:
                    self.out(f"  {exc}; try again")
                    continue
                raise SetupError(f"{setting.label}: {exc}") from None
            if not self.tty:
                self.out(f"{question}{value}  ({source})")
            return value, source

    def confirm(self, question: str) -> bool:
        if not self.interactive:
            return False
        try:
            return input(f"{question} [y/N]: ").strip().lower() in ("y", "yes")
        except EOFError:
            return False


def gather_settings(args: argparse.Namespace, prompter: Prompter,
                    environ: dict[str, str] | None = None) -> dict[str, object]:
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for s in SETTINGS:
        flag_value = getattr(args, s.flag, None)
        if flag_value is not None:
            try:
                values[s.key] = s.parse(str(flag_value))
            except ValueError as exc:
                raise SetupError(f"--{s.flag.replace('_', '-')}: {exc}") from None
            prompter.out(f"{s.label}: {values[s.key]}  (--{s.flag.replace('_', '-')})")
        elif env.get(s.env):
            try:
                values[s.key] = s.parse(env[s.env])
            except ValueError as exc:
                raise SetupError(f"${s.env}: {exc}") from None
            prompter.out(f"{s.label}: {values[s.key]}  (${s.env})")
        else:
            values[s.key], _ = prompter.ask(s)
    return values


# --------------------------------------------------------------------------- srtslurm.yaml


def render_cluster_file(values: dict[str, object], srtctl_root: Path, *, use_gpus_per_node_directive: bool = True,
                        use_segment_sbatch_directive: bool = True) -> str:
    return render(TEMPLATE_NAME,
        account=values["default_account"],
        partition=values["default_partition"],
        time_limit=values["default_time_limit"],
        gpus_per_node=values["gpus_per_node"],
        srtctl_root=str(srtctl_root),
        use_gpus_per_node_directive=use_gpus_per_node_directive,
        use_segment_sbatch_directive=use_segment_sbatch_directive,
    )


def write_cluster_file(path: Path, text: str) -> None:
    """Validate with the cluster-file model, then replace atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    try:
        load_cluster_config(tmp)
    except ConfigError as exc:
        tmp.unlink(missing_ok=True)
        raise SetupError(f"generated {path.name} does not validate (bug in setup): {exc}") from None
    os.replace(tmp, path)


def detect_srtctl_root(explicit: str | None = None) -> Path:
    """--root, else the checkout this code runs from, else the current directory."""
    if explicit:
        return Path(explicit).resolve()
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "launcher").is_dir():
        return REPO_ROOT
    return Path.cwd().resolve()


# --------------------------------------------------------------------------- command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", choices=ARCHES, default=None,
                   help="CPU architecture of the compute nodes (default: this machine's)")
    p.add_argument("--root", help="srt-slurm checkout (default: auto-detected)")
    p.add_argument("--bin-dir", help="where binaries go (default: <root>/bin)")
    p.add_argument("--output", help=f"cluster file to write (default: <root>/{CLUSTER_FILE_NAME})")
    p.add_argument("--release-base-url", help=f"mirror of the release site (also ${binaries.BASE_URL_ENV})")
    p.add_argument("--manifest", help=f"alternative binaries.json (also ${MANIFEST_ENV})")
    p.add_argument("--nats-archive", type=Path, help="install NATS from this local .tar.gz instead of downloading")
    p.add_argument("--etcd-archive", type=Path, help="install etcd from this local .tar.gz instead of downloading")
    p.add_argument("--skip-binaries", action="store_true", help="only write srtslurm.yaml")
    p.add_argument("--binaries-only", action="store_true",
                   help="only fetch NATS/etcd, ask nothing, leave srtslurm.yaml as it is (`make setup-binaries`)")
    p.add_argument("--reinstall", action="store_true", help="download again even if the pinned version is installed")
    p.add_argument("--download-timeout", type=float, default=30.0, help="seconds per network operation")
    p.add_argument("--account", help="SLURM account (default: restricted)")
    p.add_argument("--partition", help="SLURM partition (default: batch)")
    p.add_argument("--gpus-per-node", help="GPUs per node (default: 4)")
    p.add_argument("--time-limit", help="default time limit (default: 4:00:00)")
    p.add_argument("--no-gpus-per-node-directive", action="store_true",
                   help="write use_gpus_per_node_directive: false")
    p.add_argument("--no-segment-directive", action="store_true", help="write use_segment_sbatch_directive: false")
    p.add_argument("-y", "--yes", action="store_true", help="use defaults/flags, ask nothing")
    p.add_argument("--force", action="store_true", help=f"overwrite an existing {CLUSTER_FILE_NAME}")


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Ask, write srtslurm.yaml, then fetch NATS/etcd: a failed fetch never costs the answers."""
    if args.skip_binaries and args.binaries_only:
        raise SetupError("--skip-binaries and --binaries-only exclude each other")
    root = detect_srtctl_root(args.root)
    arch = args.arch or platform.machine()
    bin_dir = Path(args.bin_dir).resolve() if args.bin_dir else root / "bin"
    output = Path(args.output).resolve() if args.output else root / CLUSTER_FILE_NAME

    out(f"srt-slurm setup: root {root}, arch {arch}")
    if not args.binaries_only:
        cluster_file_step(args, root, output, out)
    if args.skip_binaries:
        return 0
    manifest_path = args.manifest or os.environ.get(MANIFEST_ENV)
    try:
        results = binaries.install_all(
            arch, bin_dir,
            manifest=binaries.load_manifest(manifest_path),
            base_url=args.release_base_url,
            local_archives={"nats": args.nats_archive, "etcd": args.etcd_archive},
            reinstall=args.reinstall, timeout=args.download_timeout, say=out)
    except SetupError as exc:
        lines = [str(exc)]
        if not args.binaries_only and output.exists():
            lines.append(f"  {output} is written; your settings are kept.")
        lines.append(f"  retry only the binaries: {retry_command(args, arch)}")
        raise SetupError("\n".join(lines)) from None
    unverified = [r.component for r in results if not r.verified]
    if unverified:
        out(f"WARNING: not checksum-verified: {', '.join(unverified)} (see messages above)")
    return 0


def retry_command(args: argparse.Namespace, arch: str) -> str:
    """What fetches only NATS/etcd again (asks nothing, leaves srtslurm.yaml alone), with the options
    that chose where they go and where they come from."""
    import shlex

    cmd = ["python", "-m", "launcher.setup_cmd", "--binaries-only", "--arch", arch]
    for flag, value in (("--root", args.root), ("--bin-dir", args.bin_dir), ("--manifest", args.manifest),
                        ("--release-base-url", args.release_base_url)):
        if value:
            cmd += [flag, str(value)]
    archives = "--nats-archive FILE --etcd-archive FILE"
    if len(cmd) == 6:
        return (f"make setup-binaries ARCH={shlex.quote(arch)}  (with archives fetched elsewhere: "
                f"{shlex.join(cmd)} {archives})")
    return f"{shlex.join(cmd)}  (with archives fetched elsewhere, add {archives})"


def cluster_file_step(args: argparse.Namespace, root: Path, output: Path, out: Callable[[str], None]) -> None:
    prompter = Prompter(assume_yes=args.yes, out=out)
    if output.exists() and not args.force and not prompter.confirm(f"{output} already exists. Overwrite it?"):
        out(f"{output} already exists; left unchanged. Re-run with --force to replace it "
            "(your edits, model_paths and containers would be lost).")
        return
    out("Cluster settings (press Enter to accept the default):" if prompter.interactive else "Cluster settings:")
    values = gather_settings(args, prompter)
    text = render_cluster_file(values, root,
                               use_gpus_per_node_directive=not args.no_gpus_per_node_directive,
                               use_segment_sbatch_directive=not args.no_segment_directive)
    write_cluster_file(output, text)
    out(f"Wrote {output} (srtctl_root: {root}).")
    out("Next: add model_paths and containers to it, then `srtctl dry-run -f configs/<job>.yaml`.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make setup", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args, out=lambda s: print(s, flush=True))
    except SrtError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nsetup interrupted; nothing half-installed (each component is installed atomically)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
