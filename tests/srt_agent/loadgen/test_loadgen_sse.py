"""EventStream: SSE bytes -> token timestamps, usage and errors, however the bytes are split."""

import json

from srt_agent.loadgen.config import split_url
from srt_agent.loadgen.records import RequestRecord
from srt_agent.loadgen.sse import EventStream


def ev(obj, sep="\n"):
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"data: {data}{sep}{sep}".encode()


def tok(text, **kw):
    return {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": None}],
            "usage": None, **kw}


USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}


def run(pieces):
    rec = RequestRecord(0, scheduled=0.0)
    s = EventStream(rec)
    for t, data in pieces:
        s.feed(data, t)
    s.close(rec, 9.0, None)
    return rec, s


def test_one_event_per_read():
    rec, s = run([(1.0, ev(tok(" a"))), (2.0, ev(tok(" b"))), (3.0, ev(tok(" c"))), (4.0, ev(USAGE)),
                  (4.5, ev("[DONE]"))])
    assert rec.ok and s.done
    assert rec.chunk_times == [1.0, 2.0, 3.0] and rec.first_token == 1.0 and rec.end == 9.0
    assert rec.output_tokens == 3 and rec.input_tokens == 7 and rec.usage_reported


def test_events_split_across_reads_get_the_time_their_last_byte_arrived():
    data = ev(tok(" a")) + ev(tok(" b"))
    rec, _ = run([(1.0, data[:10]), (2.0, data[10:40]), (3.0, data[40:])])
    assert rec.chunk_times == [3.0, 3.0]


def test_several_events_in_one_read_share_its_timestamp():
    rec, _ = run([(1.0, ev(tok("x")) * 4 + ev(tok("")))])
    assert rec.chunk_times == [1.0] * 4  # the empty-text event carries no token


def test_empty_text_is_not_a_token_and_no_usage_falls_back_to_counting():
    rec, _ = run([(1.0, ev(tok(""))), (2.0, ev(tok("a"))), (3.0, ev(tok("b")))])
    assert rec.first_token == 2.0 and rec.output_tokens == 2 and not rec.usage_reported


def test_crlf_line_breaks_and_spaced_json():
    rec, _ = run([(1.0, ev(json.dumps(tok("a")), sep="\r\n")[:7]), (2.0, ev(json.dumps(tok("a")), sep="\r\n")[7:]),
                  (3.0, ev(json.dumps(tok("b")), sep="\r\n")), (4.0, ev(json.dumps(USAGE), sep="\r\n"))])
    assert rec.chunk_times == [2.0, 3.0] and rec.output_tokens == 3


def test_chat_deltas_count_as_tokens():
    chunk = lambda c: {"choices": [{"index": 0, "delta": {"content": c}}]}
    rec, _ = run([(1.0, ev(chunk(""))), (2.0, ev(chunk("hi"))), (3.0, ev(chunk(" there")))])
    assert rec.chunk_times == [2.0, 3.0]


def test_stream_error_fails_the_request():
    rec, _ = run([(1.0, ev(tok("a"))), (2.0, ev({"error": {"message": "out of memory", "code": 500}}))])
    assert not rec.ok and "out of memory" in rec.error


def test_usage_on_every_chunk_takes_the_last():
    rec, _ = run([(1.0, ev({"choices": [{"text": "a"}], "usage": {"completion_tokens": 1}})),
                  (2.0, ev({"choices": [{"text": "b"}], "usage": {"completion_tokens": 2}}))])
    assert rec.chunk_times == [1.0, 2.0] and rec.output_tokens == 2


def test_text_that_looks_like_a_key_is_still_one_token():
    rec, _ = run([(1.0, ev(tok('"text":""')))])
    assert rec.chunk_times == [1.0]


def test_split_url():
    assert split_url("http://127.0.0.1:8000", "/v1/completions") == ("127.0.0.1", 8000, "/v1/completions")
    assert split_url("http://127.0.0.1:8000/v1", "/v1/completions") == ("127.0.0.1", 8000, "/v1/completions")


def test_whole_stream_in_one_read_counts_the_head_in_bulk_and_parses_the_tail():
    # tokens (one empty), then usage and [DONE], all in one read: the token events before the
    # usage chunk take the bulk path, the tail is parsed; the result is the same either way
    data = ev(tok(" a")) + ev(tok("")) + ev(tok(" b")) + ev(USAGE) + ev("[DONE]")
    rec, s = run([(2.0, data)])
    assert rec.ok and s.done
    assert rec.chunk_times == [2.0, 2.0] and rec.output_tokens == 3 and rec.usage_reported
    rec, s = run([(2.0, ev(USAGE) + ev(tok(" late")) + ev("[DONE]"))])  # special event first: all parsed
    assert s.done and rec.chunk_times == [2.0] and rec.output_tokens == 3
    rec, s = run([(2.0, ev(tok(" a")) + ev({"error": {"message": "boom"}}))])
    assert not rec.ok and "boom" in rec.error and rec.chunk_times == [2.0]
