"""Compiled templates are cached between runs; the cache never changes what is rendered."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RENDER = """
import sys
from srt_agent.nginx import render_nginx_conf
from srt_agent.templating import render
sys.stdout.write(render("nats.conf.j2", max_payload=1048576))
sys.stdout.write(render_nginx_conf("127.0.0.1", 8000, [("127.0.0.1", 8001)], "/tmp/run"))
"""


def _render(cache_home: Path) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    return subprocess.run([sys.executable, "-c", RENDER], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout


def test_second_render_reads_the_cache_and_renders_the_same(tmp_path):
    first = _render(tmp_path)
    cached = list((tmp_path / "srtctl").glob("jinja2-*/*.cache"))
    assert len(cached) == 2
    for f in cached:  # a truncated cache file is compiled again, not an error
        f.write_bytes(f.read_bytes()[:20])
    assert _render(tmp_path) == first
    assert _render(tmp_path) == first


def test_an_unwritable_cache_directory_only_costs_the_compile(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert _render(blocker) == _render(tmp_path / "ok")


def test_a_cache_directory_others_can_write_is_not_used(tmp_path):
    """Compiled templates are code: a cache someone else could have written is neither read nor written."""
    first = _render(tmp_path)
    (cache_dir,) = (tmp_path / "srtctl").glob("jinja2-*")
    for d, mode in ((cache_dir, 0o777), (cache_dir.parent, 0o775)):
        d.chmod(mode)
        for f in cache_dir.glob("*.cache"):
            f.unlink()
        assert _render(tmp_path) == first
        assert not list(cache_dir.glob("*.cache")), f"{d} is writable by others, yet the cache was written"
        d.chmod(0o700)
    assert _render(tmp_path) == first and len(list(cache_dir.glob("*.cache"))) == 2  # ours again: used
