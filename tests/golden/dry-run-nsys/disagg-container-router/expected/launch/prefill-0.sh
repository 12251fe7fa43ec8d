#!/usr/bin/env bash
# Launch script of prefill-0 (worker) on node node0, written by the srt-slurm agent.
set -euo pipefail
exec >>/logs/logs/node0_prefill-0.log 2>&1
echo "[srt] $(date -u +%Y-%m-%dT%H:%M:%SZ) starting "prefill-0" on ${SLURMD_NODENAME:-$(hostname)}"
export CUDA_VISIBLE_DEVICES=0,1,2,3
echo "[srt] node=${SLURMD_NODENAME:-?} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-}"
exec nsys profile -t cuda,nvtx --cuda-graph-trace=node -c cudaProfilerApi --capture-range-end stop -o /logs/profiles/nsys_prefill_0_node0 python3 -m sglang.launch_server --model-path /model --served-model-name tiny-llama --tp-size 4 --host node0 --port 10000 --disaggregation-mode prefill --disaggregation-bootstrap-port 10001 --enable-metrics --mem-fraction-static 0.8
