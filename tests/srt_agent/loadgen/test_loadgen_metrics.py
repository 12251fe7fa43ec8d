"""metrics.summarize, check_point and the recorded verdict on hand-made records with hand-computed values."""

import math

import pytest

from srt_agent.errors import BenchmarkError
from srt_agent.loadgen import ItlHistogram, RequestRecord, check_point, summarize
from srt_agent.loadgen.metrics import percentile
from srt_agent.loadgen.validity import recorded_verdict, verdict

START = 100.0


def rec(i, scheduled, sent, first, end, out, times, ok=True, error=None, inp=10):
    return RequestRecord(index=i, scheduled=scheduled, ready=scheduled, sent=sent, first_token=first, end=end,
                         ok=ok, error=error, output_tokens=out, input_tokens=inp, requested_output_tokens=out,
                         usage_reported=True, n_chunks=len(times), chunk_times=list(times))


def records():
    return [
        # TTFT 50, E2EL 250, TPOT (250-50)/4 = 50, ITL 50 x4
        rec(0, 100.0, 100.001, 100.05, 100.25, 5, [100.05, 100.10, 100.15, 100.20, 100.25]),
        # TTFT 100, E2EL 400, TPOT 300/3 = 100, ITL 100 x3
        rec(1, 100.0, 100.002, 100.10, 100.40, 4, [100.10, 100.20, 100.30, 100.40]),
        # failed mid-stream: not in latency or ITL stats, counts as failed, schedule delay 10
        rec(2, 100.25, 100.26, 100.27, 100.30, 0, [100.27, 100.28], ok=False, error="connection closed"),
        # TTFT 50, E2EL 250, TPOT 200/1 = 200, ITL 200
        rec(3, 100.25, 100.253, 100.30, 100.50, 2, [100.30, 100.50]),
    ]


def test_summary_hand_computed():
    r = summarize(records(), start=START, max_concurrency=2, total_gpus=4, decode_gpus=2)
    approx = lambda x: pytest.approx(x, rel=1e-6, abs=1e-6)
    assert r["completed"] == 3 and r["failed"] == 1
    assert r["duration"] == approx(0.5)
    assert r["total_input_tokens"] == 30 and r["total_output_tokens"] == 11
    assert r["request_throughput"] == approx(6.0)
    assert r["output_throughput"] == approx(22.0)
    assert r["total_token_throughput"] == approx(82.0)
    # TTFT [50, 50, 100]
    assert r["mean_ttft_ms"] == approx(200 / 3)
    assert r["median_ttft_ms"] == approx(50)
    assert r["std_ttft_ms"] == approx(math.sqrt(((50 - 200 / 3) ** 2 * 2 + (100 - 200 / 3) ** 2) / 3))
    assert r["p90_ttft_ms"] == approx(90)  # rank 1.8: 50 + 0.8 * 50
    assert r["p99_ttft_ms"] == approx(99)
    # TPOT [50, 100, 200]
    assert r["mean_tpot_ms"] == approx(350 / 3)
    assert r["median_tpot_ms"] == approx(100)
    assert r["p90_tpot_ms"] == approx(180)
    assert r["p99_tpot_ms"] == approx(198)
    # ITL [50, 50, 50, 50, 100, 100, 100, 200]
    assert r["mean_itl_ms"] == approx(87.5)
    assert r["median_itl_ms"] == approx(75)
    assert r["p90_itl_ms"] == approx(130)  # rank 6.3: 100 + 0.3 * 100
    assert r["p99_itl_ms"] == approx(193)
    assert r["std_itl_ms"] == approx(math.sqrt((4 * 37.5**2 + 3 * 12.5**2 + 112.5**2) / 8))
    # E2EL [250, 250, 400]
    assert r["mean_e2el_ms"] == approx(300)
    assert r["median_e2el_ms"] == approx(250)
    assert r["p99_e2el_ms"] == approx(397)
    # per user / per GPU
    assert r["tok_s_per_user"] == approx(1000 / (350 / 3))
    assert r["tok_s_per_user_median"] == approx(10.0)
    assert r["output_tok_s_per_gpu"] == approx(5.5)
    assert r["total_tok_s_per_gpu"] == approx(20.5)
    assert r["output_tok_s_per_decode_gpu"] == approx(11.0)
    # schedule delay [1, 2, 3, 10] ms
    assert r["median_schedule_delay_ms"] == approx(2.5)
    assert r["p99_schedule_delay_ms"] == approx(9.79)
    assert r["achieved_request_rate"] == approx(4 / 0.26)
    assert r["max_concurrency"] == 2 and r["request_rate"] == "inf"
    assert r["errors"] == {"connection closed": 1}
    assert r["client_warnings"] == []


def test_keys_users_parse_are_present():
    r = summarize(records(), start=START, max_concurrency=2)
    keys = ["duration", "completed", "total_input_tokens", "total_output_tokens", "request_throughput",
            "output_throughput", "total_token_throughput", "max_concurrency", "request_rate"]
    keys += [f"{s}_{m}_ms" for s in ("mean", "median", "std", "p99") for m in ("ttft", "tpot", "itl", "e2el")]
    assert not [k for k in keys if k not in r]
    assert r["output_tok_s_per_gpu"] is None  # no GPU count given: no made-up number


def test_folded_histogram_equals_raw_times():
    recs = records()
    raw = summarize(recs, start=START, max_concurrency=2)
    hist = ItlHistogram()
    for r in recs:  # what a worker does: fold successful requests, drop the raw times
        if r.ok:
            hist.add_times(r.chunk_times)
        r.chunk_times = None
    folded = summarize(recs, start=START, max_concurrency=2, itl=hist)
    for k in ("mean_itl_ms", "median_itl_ms", "p90_itl_ms", "p99_itl_ms", "std_itl_ms"):
        assert folded[k] == pytest.approx(raw[k], abs=1e-6)


def test_percentile_interpolates_like_numpy():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == pytest.approx(3.97)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_histogram_merge_and_order_statistics():
    a, b = ItlHistogram(), ItlHistogram()
    a.add_times([0.0, 0.001, 0.003])  # gaps 1 ms, 2 ms
    b.add_times([5.0, 5.004])  # gap 4 ms
    a.merge(b)
    assert a.n == 3
    assert a.percentile(50) == pytest.approx(0.002)
    assert a.percentile(0) == pytest.approx(0.001) and a.percentile(100) == pytest.approx(0.004)
    assert a.percentile(75) == pytest.approx(0.003)  # rank 1.5 between 2 ms and 4 ms


def test_warnings_when_client_falls_behind():
    recs = records()
    recs[1].sent = recs[1].ready + 0.050  # sent 50 ms after it could have been
    r = summarize(recs, start=START, max_concurrency=2, client_cpu=[0.97, 0.2], loop_lag_p99_ms=25.0,
                  request_rate=100.0)
    text = " | ".join(r["client_warnings"])
    assert "client lag p99" in text
    assert "event loop lag" in text
    assert "worker 0 used 97%" in text and "worker 1" not in text
    assert "achieved request rate" in text
    assert r["request_rate"] == 100.0


def test_fewer_tokens_than_asked_and_missing_usage_are_flagged():
    recs = records()
    recs[0].requested_output_tokens = 8
    recs[3].usage_reported = False
    text = " | ".join(summarize(recs, start=START, max_concurrency=2)["client_warnings"])
    assert "1 requests returned fewer output tokens than max_tokens" in text
    assert "1 requests had no usage chunk" in text


def test_check_point_accepts_a_valid_point():
    r = summarize([x for x in records() if x.ok], start=START, max_concurrency=2)
    assert check_point(r) is r


@pytest.mark.parametrize("change, message", [
    (dict(completed=0, failed=40, total_output_tokens=0), "no request completed out of 40"),
    (dict(completed=40, failed=0, total_output_tokens=0), "zero output tokens"),
    (dict(completed=98, failed=2, total_output_tokens=500), "2 of 100 requests failed"),
])
def test_check_point_rejects(change, message):
    r = {"max_concurrency": 8, "errors": {"HTTP 500: boom": 2}, **change}
    with pytest.raises(BenchmarkError, match=message):
        check_point(r)


def test_check_point_threshold_is_configurable():
    r = {"completed": 98, "failed": 2, "total_output_tokens": 500}
    assert check_point(r, max_failed_fraction=0.05) is r


def test_expected_itl_tightens_the_loop_lag_check_and_flags_faster_tokens():
    plain = summarize(records(), start=START, max_concurrency=2, loop_lag_p99_ms=6.0)
    assert plain["client_warnings"] == []  # 6 ms is under the 10 ms default
    r = summarize(records(), start=START, max_concurrency=2, loop_lag_p99_ms=6.0, expected_itl_ms=10.0)
    assert any("event loop lag p99 6.0 ms > half the expected ITL 10 ms" in w for w in r["client_warnings"])
    # the hand-made gaps have median 75 ms: fine against 100 ms expected, too fast against 200 ms
    assert summarize(records(), start=START, max_concurrency=2, expected_itl_ms=100.0)["client_warnings"] == []
    slow = summarize(records(), start=START, max_concurrency=2, expected_itl_ms=200.0)["client_warnings"]
    assert len(slow) == 1 and "ITL median 75.00 ms is under 0.5 x the expected 200 ms" in slow[0]


def test_verdict_is_recorded_once_and_read_back():
    ok = summarize([x for x in records() if x.ok], start=START, max_concurrency=2)
    assert verdict(ok) is None and ok["valid"] is True and ok["invalid_reason"] is None
    assert recorded_verdict(ok, "results/x.json") is ok
    bad = {"completed": 98, "failed": 2, "total_output_tokens": 500, "max_concurrency": 8}
    problem = verdict(bad, max_failed_fraction=0.01)
    assert isinstance(problem, BenchmarkError) and bad["valid"] is False
    assert bad["max_failed_fraction"] == 0.01 and "2 of 100 requests failed" in bad["invalid_reason"]
    with pytest.raises(BenchmarkError, match="2 of 100 requests failed"):
        recorded_verdict(bad, "results/x.json")
    with pytest.raises(BenchmarkError, match="results/old.json has no validity verdict"):
        recorded_verdict({"completed": 1, "total_output_tokens": 1}, "results/old.json")
