"""Atomic writes: readers never see a partial file; temp files never linger."""

import json
import os
import threading

import pytest

from srt_agent.atomic import append_jsonl, write_bytes_atomic, write_json_atomic, write_text_atomic, write_texts_atomic


def test_write_creates_parents_and_mode(tmp_path):
    p = tmp_path / "a" / "b" / "status.json"
    write_json_atomic(p, {"phase": "workers", "n": 1})
    assert json.loads(p.read_text()) == {"phase": "workers", "n": 1}
    assert p.read_text().endswith("\n")
    write_text_atomic(tmp_path / "x.sh", "#!/bin/sh\n", mode=0o755)
    assert os.stat(tmp_path / "x.sh").st_mode & 0o777 == 0o755


def test_replace_leaves_no_temp_files(tmp_path):
    p = tmp_path / "f.txt"
    for i in range(5):
        write_text_atomic(p, f"v{i}")
    assert p.read_text() == "v4"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_failed_write_keeps_old_content_and_cleans_up(tmp_path):
    p = tmp_path / "status.json"
    write_json_atomic(p, {"ok": 1})

    with pytest.raises(TypeError):
        write_text_atomic(p, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        write_bytes_atomic(p, object())  # type: ignore[arg-type]  # fails inside the write
    assert json.loads(p.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == ["status.json"]


def test_reader_never_sees_a_partial_file(tmp_path):
    p = tmp_path / "status.json"
    big = {"x": "y" * 200_000}
    write_json_atomic(p, {"i": -1, **big})
    stop = threading.Event()
    bad: list[str] = []

    def reader():
        while not stop.is_set():
            try:
                json.loads(p.read_text())
            except json.JSONDecodeError as exc:
                bad.append(str(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(30):
            write_json_atomic(p, {"i": i, **big})
    finally:
        stop.set()
        t.join()
    assert bad == [] and json.loads(p.read_text())["i"] == 29


def test_append_jsonl_whole_lines(tmp_path):
    p = tmp_path / "events.jsonl"
    threads = [threading.Thread(target=lambda k=k: [append_jsonl(p, {"k": k, "i": i}) for i in range(50)])
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = p.read_text().splitlines()
    assert len(lines) == 200
    assert sorted((r["k"], r["i"]) for r in map(json.loads, lines)) == [(k, i) for k in range(4) for i in range(50)]


def test_write_many_files_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr("srt_agent.atomic._BATCH", 3)  # several batches of 3 files
    files = {f"launch/p{i}.sh": f"#!/bin/sh\necho {i}\n" for i in range(7)} | {"plan.json": "{}\n"}
    (tmp_path / "plan.json").write_text("old")
    write_texts_atomic(tmp_path, files, mode=0o600)
    assert {n: (tmp_path / n).read_text() for n in files} == files
    assert sorted(os.listdir(tmp_path / "launch")) == sorted(f"p{i}.sh" for i in range(7))
    assert os.stat(tmp_path / "plan.json").st_mode & 0o777 == 0o600


def test_write_many_failure_replaces_nothing_of_the_batch(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    (tmp_path / "blocker").write_text("a file where a directory is needed")
    with pytest.raises(OSError):
        write_texts_atomic(tmp_path, {"a.txt": "new", "blocker/b.txt": "x"})
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "blocker"]
    with pytest.raises(TypeError, match="needs str"):
        write_texts_atomic(tmp_path, {"a.txt": "new", "c.txt": b"bytes"})  # type: ignore[dict-item]
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "blocker"] and (tmp_path / "a.txt").read_text() == "old"
