"""The simulated worker's /metrics page: SGLang's Prometheus names, values from the scheduler.

Names follow SGLang's `--enable-metrics` exporter (python/sglang/srt/metrics/collector.py), so
the agent's scraper (srt_agent/agent/server_metrics.py) reads a simulated and a real worker the
same way:

    sglang:num_running_reqs, sglang:num_queue_reqs       running batch / waiting queue
    sglang:num_used_tokens, sglang:max_total_num_tokens  KV tokens held by the running batch / pool size
    sglang:token_usage                                   num_used_tokens / max_total_num_tokens
    sglang:gen_throughput                                generated tokens/s, refreshed every 40 decode passes (0 idle)
    sglang:cache_hit_rate                                0: the simulator has no prefix cache
    sglang:num_requests_total, sglang:prompt_tokens_total, sglang:generation_tokens_total
    sglang:realtime_tokens_total{mode=prefill_compute|prefill_cache|decode}   the prefill/decode split

plus the simulator's own `srt_sim:*` counters (forward passes, aborted requests, lateness).
"""

from __future__ import annotations

import json


def max_total_num_tokens(config) -> int:
    """The KV pool the simulator pretends to have (also reported by /server_info)."""
    return config.context_length * config.effective_max_running_requests


def render_metrics(config, scheduler) -> str:
    s = scheduler.stats
    label = f"model_name={json.dumps(config.model_name)}"
    pool = max_total_num_tokens(config)
    used = scheduler.used_tokens
    rows = [
        ("sglang:num_requests_total", "counter", "", s.requests),
        ("sglang:prompt_tokens_total", "counter", "", s.prompt_tokens),
        ("sglang:generation_tokens_total", "counter", "", s.generation_tokens),
        ("sglang:num_running_reqs", "gauge", "", scheduler.num_running),
        ("sglang:num_queue_reqs", "gauge", "", scheduler.num_waiting),
        ("sglang:num_used_tokens", "gauge", "", used),
        ("sglang:max_total_num_tokens", "gauge", "", pool),
        ("sglang:token_usage", "gauge", "", float(f"{used / pool:.6g}") if pool else 0.0),
        ("sglang:gen_throughput", "gauge", "", round(scheduler.gen_throughput, 3)),
        ("sglang:cache_hit_rate", "gauge", "", 0.0),
        ("sglang:realtime_tokens_total", "counter", 'mode="prefill_compute"', s.prefill_tokens),
        ("sglang:realtime_tokens_total", "counter", 'mode="prefill_cache"', 0),
        ("sglang:realtime_tokens_total", "counter", 'mode="decode"', s.decode_tokens),
        ("srt_sim:forward_passes_total", "counter", "", s.forward_passes),
        ("srt_sim:aborted_requests_total", "counter", "", s.aborted),
        ("srt_sim:late_passes_total", "counter", "", s.late_passes),
        ("srt_sim:lateness_seconds_total", "counter", "", round(s.lateness_sum_s, 6)),
        ("srt_sim:lateness_seconds_max", "gauge", "", round(s.lateness_max_s, 6)),
    ]
    lines, typed = [], set()
    for name, kind, extra, value in rows:
        if name not in typed:
            typed.add(name)
            lines.append(f"# TYPE {name} {kind}")
        labels = label + ("," + extra if extra else "")
        lines.append(f"{name}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"
