"""Trace replay: the Mooncake-format parser, the prompts (lengths, shared 512-token blocks) and the
open-loop schedule (send times, concurrency cap, goodput), against the real SSE test server."""

from __future__ import annotations

import json

import pytest

from srt_agent.errors import BenchmarkError
from srt_agent.loadgen import LoadConfig, run_point, run_trace
from srt_agent.loadgen.config import from_argv
from srt_agent.loadgen.trace import BLOCK_TOKENS, TraceWorkload
from srt_agent.loadgen.trace_file import TraceRequest, load_trace

pytest.importorskip("httptools")


def write_trace(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# ---- the file ----------------------------------------------------------------------------------

def test_a_trace_is_read_in_timestamp_order(tmp_path):
    path = write_trace(tmp_path / "t.jsonl", [
        {"timestamp": 30, "input_length": 10, "output_length": 2},
        {"timestamp": 0, "input_length": 700, "output_length": 5, "hash_ids": [1, 2]},
        {"timestamp": 10, "input_length": 20, "output_length": 3}])
    trace = load_trace(path)
    assert [r.timestamp_ms for r in trace.requests] == [0, 10, 30]
    assert trace.requests[0] == TraceRequest(0.0, 700, 5, (1, 2))
    assert trace.duration_s == pytest.approx(0.03)


@pytest.mark.parametrize("line, words", [
    ("{not json", "not JSON"),
    ('{"timestamp": -1, "input_length": 5, "output_length": 1}', "'timestamp'"),
    ('{"timestamp": 0, "output_length": 1}', "'input_length'"),
    ('{"timestamp": 0, "input_length": 5, "output_length": 0}', "'output_length'"),
    ('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": ["a"]}', "'hash_ids'"),
    ('[1, 2]', "JSON object"),
    ('{"timestamp": 0, "input_length": 5, "output_length": 1, "session_id": "s1"}', "'session_id' is not replayed"),
    ('{"timestamp": 0, "text_input": "hi", "output_length": 1}', "'text_input' is not replayed"),
    ('{"timestamp": 0, "input_length": 5, "output_lenght": 1}', "did you mean 'output_length'"),
])
def test_a_bad_line_names_the_file_and_line(tmp_path, line, words):
    path = tmp_path / "t.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n\n' + line + "\n")
    with pytest.raises(BenchmarkError) as e:
        load_trace(str(path))
    assert f"{path}:3: " in str(e.value) and words in str(e.value)


def test_a_missing_or_empty_trace_is_an_error(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_trace(str(tmp_path / "nope.jsonl"))
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(BenchmarkError, match="no requests"):
        load_trace(str(tmp_path / "e.jsonl"))


# ---- the prompts -------------------------------------------------------------------------------

def test_prompts_have_the_trace_lengths_and_share_the_blocks_the_hash_ids_share():
    reqs = {0: TraceRequest(0, 1300, 4, (7, 8, 9)), 1: TraceRequest(0, 1100, 4, (7, 8, 5)),
            2: TraceRequest(0, 600, 4, (7,)), 3: TraceRequest(0, 600, 4), 4: TraceRequest(0, 600, 4)}
    w = TraceWorkload.build(reqs, seed=1)
    ids = {g: w.prompt_ids(g) for g in reqs}
    assert {g: len(v) for g, v in ids.items()} == {0: 1300, 1: 1100, 2: 600, 3: 600, 4: 600}
    assert all(isinstance(t, int) for v in ids.values() for t in v)
    two = 2 * BLOCK_TOKENS
    assert ids[0][:two] == ids[1][:two]  # blocks 7, 8 shared
    assert ids[0][two] != ids[1][two]  # block 9 vs block 5: they part at the block's first token
    assert ids[2][:BLOCK_TOKENS] == ids[0][:BLOCK_TOKENS]  # block 7, then its own tokens
    assert ids[2][BLOCK_TOKENS] != ids[0][BLOCK_TOKENS]
    assert ids[3][0] != ids[4][0] and ids[3][0] != ids[0][0]  # no hash ids: nothing shared
    assert ids[0] == TraceWorkload.build(reqs, seed=1).prompt_ids(0)  # deterministic


# ---- the schedule, against a real server -------------------------------------------------------

def trace_config(server, path, **kw) -> LoadConfig:
    return LoadConfig(url=server.url, model=kw.pop("model", "ok;ttft=5;itl=1"), isl=0, osl=0,
                      concurrency=kw.pop("concurrency", 0), trace_file=path, processes=kw.pop("processes", 1),
                      warmup_multiplier=kw.pop("warmup_multiplier", 0), **kw)


def test_requests_go_out_at_their_timestamps_with_their_lengths(tmp_path, sse_server):
    rows = [{"timestamp": 80 * i, "input_length": 40 + i, "output_length": 3 + i % 3,
             "hash_ids": [i % 2]} for i in range(10)]
    before = len(sse_server.arrivals)
    r = run_trace(trace_config(sse_server, write_trace(tmp_path / "t.jsonl", rows), processes=2))
    assert (r["completed"], r["failed"], r["num_requests"]) == (10, 0, 10)
    assert r["benchmark"] == "trace-replay" and r["trace_requests"] == 10 and r["max_concurrency"] is None
    arrivals = sorted(sse_server.arrivals[before:])
    assert len(arrivals) == 10
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(0.04 < g < 0.12 for g in gaps), gaps  # 80 ms apart, as the trace says (slack for a loaded machine)
    for row, rec in zip(rows, r["requests"]):
        assert rec["timestamp_ms"] == row["timestamp"]
        assert rec["input_tokens"] == row["input_length"]  # the server's prompt_tokens
        assert rec["output_tokens"] == rec["requested_output_tokens"] == row["output_length"]
        assert 0 <= rec["sent_ms"] - row["timestamp"] < 40, rec
    assert r["total_output_tokens"] == sum(x["output_length"] for x in rows)
    bodies = sse_server.bodies[before:]
    assert all(b["ignore_eos"] is True and b["stream"] is True for b in bodies)
    assert sorted(b["max_tokens"] for b in bodies) == sorted(x["output_length"] for x in rows)


def test_the_cap_bounds_the_requests_in_flight_and_late_sends_count(tmp_path, sse_server):
    rows = [{"timestamp": 0, "input_length": 8, "output_length": 2} for _ in range(6)]
    sse_server.max_in_flight = 0
    r = run_trace(trace_config(sse_server, write_trace(tmp_path / "t.jsonl", rows), model="ok;ttft=120;itl=1",
                               concurrency=2, processes=2))
    assert r["completed"] == 6 and r["max_concurrency"] == 2
    assert sse_server.max_in_flight == 2 and r["peak_in_flight"] == 2
    delays = sorted(x["send_delay_ms"] for x in r["requests"])
    assert delays[1] < 50 and delays[-1] > 200  # the last pair waited for two rounds of 120 ms
    assert r["p99_schedule_delay_ms"] > 200 and r["median_ttft_ms"] > 120  # latency counts from the timestamp


def test_goodput_counts_requests_within_both_thresholds(tmp_path, sse_server):
    path = write_trace(tmp_path / "t.jsonl", [{"timestamp": 10 * i, "input_length": 8, "output_length": 4}
                                              for i in range(4)])
    loose = run_trace(trace_config(sse_server, path, model="ok;ttft=30;itl=2", ttft_threshold_ms=2000,
                                   itl_threshold_ms=100))
    assert loose["goodput"]["requests"] == 4 and loose["goodput"]["fraction"] == 1.0
    tight = run_trace(trace_config(sse_server, path, model="ok;ttft=30;itl=2", ttft_threshold_ms=10))
    assert tight["goodput"] == {"ttft_threshold_ms": 10, "itl_threshold_ms": None, "requests": 0,
                                "fraction": 0.0, "request_goodput": 0.0}
    assert run_trace(trace_config(sse_server, path))["goodput"] is None
    with pytest.raises(BenchmarkError, match="run_trace"):
        run_point(trace_config(sse_server, path))


def test_the_command_line_of_a_trace_replay(tmp_path):
    c = LoadConfig(url="http://127.0.0.1:1", model="m", isl=0, osl=0, concurrency=0, trace_file="/t.jsonl",
                   ttft_threshold_ms=2000.0, itl_threshold_ms=25.0)
    assert from_argv(c.to_argv()) == (c, None)
    assert from_argv(["--url", "http://127.0.0.1:1", "--model", "m", "--trace-file", "/t.jsonl"])[0].concurrency == 0
    with pytest.raises(SystemExit):
        from_argv(["--url", "http://127.0.0.1:1", "--model", "m", "--isl", "8"])


def test_text_prompts_are_single_token_words_with_the_exact_lengths(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    vocab = {"[UNK]": 0, **{f"w{chr(97 + i)}{chr(97 + j)}x": 1 + 26 * i + j for i in range(26) for j in range(26)}}
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    reqs = {0: TraceRequest(0, 700, 2, (3, 4)), 1: TraceRequest(0, 600, 2, (3,)), 2: TraceRequest(0, 9, 2)}
    w = TraceWorkload.build(reqs, tokenizer=str(tmp_path))
    assert w.kind == "text"
    for g, r in reqs.items():
        text = json.loads(w.prompt_json(g))
        assert isinstance(text, str) and len(tok.encode(text).ids) == r.input_length
        assert 0 not in tok.encode(text).ids  # no unknown words
    a, b = (tok.encode(json.loads(w.prompt_json(g))).ids for g in (0, 1))
    assert a[:BLOCK_TOKENS] == b[:BLOCK_TOKENS] and a[BLOCK_TOKENS] != b[BLOCK_TOKENS]


# ---- the job file ------------------------------------------------------------------------------

def test_the_job_files_trace_replay_section_and_its_load(tmp_path):
    from srt_agent.loadgen.config import from_job

    from test_loadgen_config import JOB, plan_of

    job, plan = plan_of(tmp_path, {**JOB, "benchmark": {
        "type": "trace-replay", "trace_file": "/traces/t.jsonl", "concurrencies": [4], "ttft_threshold_ms": 2000,
        "itl_threshold_ms": 25, "seed": 3}})
    c = from_job(plan, benchmark=job.benchmark, concurrency=4)
    assert (c.trace_file, c.concurrency, c.isl, c.osl, c.seed) == ("/traces/t.jsonl", 4, 0, 0, 3)
    assert (c.ttft_threshold_ms, c.itl_threshold_ms, c.url) == (2000, 25, plan.endpoint.url)
    assert from_argv(c.to_argv())[0] == c
    assert from_job(plan, benchmark=job.benchmark, concurrency=None).concurrency == 0  # no cap
    assert "benchmark" in next(n for n in plan.nodes if n.name == plan.head_node).roles


@pytest.mark.parametrize("section, words", [
    ({"type": "trace-replay"}, "needs trace_file"),
    ({"type": "trace-replay", "trace_file": "t.jsonl"}, "absolute path"),
    ({"type": "trace-replay", "trace_file": "/t.jsonl", "isl": 8}, "isl do not apply"),
    ({"type": "trace-replay", "trace_file": "/t.jsonl", "req_rate": 2}, "req_rate do not apply"),
    ({"type": "sa-bench", "isl": 8, "osl": 8, "concurrencies": [1], "ttft_threshold_ms": 5}, "only apply to benchmark type trace-replay"),
    ({"type": "trace-replay", "trace_file": "/t.jsonl", "client_nodes": 2}, "only apply to benchmark type sa-bench"),
])
def test_trace_replay_sections_that_are_refused(section, words):
    from pydantic import ValidationError

    from srt_agent.job_config import BenchmarkSection

    with pytest.raises(ValidationError, match=words):
        BenchmarkSection.model_validate(section)


def test_the_warmup_runs_before_the_trace_and_is_not_measured(tmp_path, sse_server):
    path = write_trace(tmp_path / "t.jsonl", [{"timestamp": 5 * i, "input_length": 30, "output_length": 3}
                                              for i in range(4)])
    before = len(sse_server.bodies)
    r = run_trace(trace_config(sse_server, path, concurrency=2, warmup_multiplier=1.5))
    assert (r["warmup_prompts"], r["warmup_failed"], r["num_requests"], r["completed"]) == (3, 0, 4, 4)
    bodies = sse_server.bodies[before:]
    assert len(bodies) == 7 and [b["max_tokens"] for b in bodies[:3]] == [16, 16, 16]  # warmup first
    assert all(len(b["prompt"]) == 30 for b in bodies)  # the trace's median input length


def test_dry_run_reads_a_trace_it_can_see_and_leaves_the_others_to_the_preflight(tmp_path):
    from srt_agent.cluster_config import ClusterConfig
    from srt_agent.errors import ConfigErrors
    from srt_agent.resolved import load_job_text

    cluster = ClusterConfig(default_account="a", model_paths={"m": "/models/m"}, containers={"c": "/c.sqsh"})
    trace = tmp_path / "t.jsonl"
    text = ("name: t\nmodel:\n  path: m\n  container: c\nresources:\n  agg_nodes: 1\n  agg_workers: 1\n"
            f"benchmark:\n  type: trace-replay\n  trace_file: {trace}\n")
    assert load_job_text(text, cluster).job.benchmark.trace_file == str(trace)  # not here: the preflight's
    trace.write_text('{"timestamp": 0, "input_length": 4, "output_length": 1}\n{"timestamp": 1}\n')
    with pytest.raises(ConfigErrors) as e:
        load_job_text(text, cluster)
    (err,) = e.value.errors
    assert err.key == "benchmark.trace_file" and err.line == 10 and f"{trace}:2: 'input_length'" in err.message


def test_a_trace_without_timestamps_goes_out_as_fast_as_the_cap_allows(tmp_path, sse_server):
    path = write_trace(tmp_path / "t.jsonl", [{"input_length": 8 + i, "output_length": 2} for i in range(6)])
    assert not load_trace(path).timed
    sse_server.max_in_flight = 0
    r = run_trace(trace_config(sse_server, path, model="ok;ttft=60;itl=1", concurrency=2, processes=1))
    assert r["completed"] == 6 and sse_server.max_in_flight == 2 and r["trace_request_rate"] is None
    recs = r["requests"]
    assert [x["input_tokens"] for x in recs] == [8 + i for i in range(6)] and recs[0]["timestamp_ms"] is None
    assert max(x["send_delay_ms"] for x in recs) < 20  # a closed loop: latency counts from the free slot
    assert sorted(x["sent_ms"] for x in recs)[-1] > 100  # the last pair waited for two rounds of ~60 ms
    assert r["median_ttft_ms"] < 100
    with pytest.raises(BenchmarkError, match="no timestamps"):
        run_trace(trace_config(sse_server, path))  # uncapped: nothing would pace it


def test_timestamps_on_some_lines_only_are_refused(tmp_path):
    path = write_trace(tmp_path / "t.jsonl", [{"timestamp": 0, "input_length": 8, "output_length": 2},
                                              {"input_length": 8, "output_length": 2}])
    with pytest.raises(BenchmarkError, match=r"t.jsonl:2: line 1 has a 'timestamp' and line 2 none"):
        load_trace(path)


def test_dry_run_wants_a_cap_for_a_trace_without_timestamps(tmp_path):
    from srt_agent.cluster_config import ClusterConfig
    from srt_agent.errors import ConfigErrors
    from srt_agent.resolved import load_job_text

    cluster = ClusterConfig(default_account="a", model_paths={"m": "/models/m"}, containers={"c": "/c.sqsh"})
    trace = write_trace(tmp_path / "t.jsonl", [{"input_length": 8, "output_length": 2}])
    text = ("name: t\nmodel:\n  path: m\n  container: c\nresources:\n  agg_nodes: 1\n  agg_workers: 1\n"
            f"benchmark:\n  type: trace-replay\n  trace_file: {trace}\n")
    with pytest.raises(ConfigErrors) as e:
        load_job_text(text, cluster)
    assert "no timestamps" in e.value.errors[0].message and "concurrencies" in e.value.errors[0].hint
    assert load_job_text(text + "  concurrencies: [4]\n", cluster).job.benchmark.concurrencies == [4]


def test_uncapped_nothing_waits_more_connections_open_when_needed(tmp_path, sse_server):
    from srt_agent.loadgen.trace_runner import UNCAPPED_SLOTS

    n = UNCAPPED_SLOTS + 6
    path = write_trace(tmp_path / "t.jsonl", [{"timestamp": 0, "input_length": 8, "output_length": 2}] * n)
    sse_server.max_in_flight = 0
    r = run_trace(trace_config(sse_server, path, model="ok;ttft=150;itl=1"))
    assert r["completed"] == n and sse_server.max_in_flight == n and r["peak_in_flight"] == n
    assert max(x["send_delay_ms"] for x in r["requests"]) < 50
