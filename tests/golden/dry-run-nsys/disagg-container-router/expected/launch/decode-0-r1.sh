#!/usr/bin/env bash
# Launch script of decode-0-r1 (worker) on node node2, written by the srt-slurm agent.
set -euo pipefail
exec >>/logs/logs/node2_decode-0-r1.log 2>&1
echo "[srt] $(date -u +%Y-%m-%dT%H:%M:%SZ) starting "decode-0-r1" on ${SLURMD_NODENAME:-$(hostname)}"
export CUDA_VISIBLE_DEVICES=0,1,2,3
echo "[srt] node=${SLURMD_NODENAME:-?} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-}"
exec nsys profile -t cuda,nvtx --cuda-graph-trace=node -c cudaProfilerApi --capture-range-end stop -o /logs/profiles/nsys_decode_0_node2 python3 -m sglang.launch_server --model-path /model --served-model-name tiny-llama --tp-size 8 --host node2 --port 10000 --disaggregation-mode decode --dist-init-addr node1:10001 --nnodes 2 --node-rank 1 --enable-metrics
