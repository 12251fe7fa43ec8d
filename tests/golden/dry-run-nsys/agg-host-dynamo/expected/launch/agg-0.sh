#!/usr/bin/env bash
# Launch script of agg-0 (worker) on node node0, written by the srt-slurm agent.
set -euo pipefail
exec >>/srv/srt-slurm/logs/JOBID_1A_<TIMESTAMP>/logs/node0_agg-0.log 2>&1
echo "[srt] $(date -u +%Y-%m-%dT%H:%M:%SZ) starting "agg-0" on ${SLURMD_NODENAME:-$(hostname)}"
export CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7
export DYN_DISCOVERY_BACKEND=etcd
export DYN_EVENT_PLANE=nats
export DYN_EVENT_PLANE_HOST=node0
export DYN_HTTP_RPC_HOST=node0
export DYN_REQUEST_PLANE=tcp
export DYN_SDK_DISABLE_ANSI_LOGGING=1
export DYN_SYSTEM_HOST=node0
export DYN_SYSTEM_PORT=10004
export DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS='["generate"]'
export DYN_TCP_RESPONSE_STREAM_HOST=node0
export DYN_TCP_RPC_HOST=node0
export ETCD_ENDPOINTS=http://node0:10002
export NATS_SERVER=nats://node0:10000
echo "[srt] node=${SLURMD_NODENAME:-?} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-}"
# ai-dynamo in a cached venv over the interpreter's own packages (srt_agent/dynamo_install.py)
srt_python=$(/usr/bin/python3 /srv/srt-slurm/srt_agent/dynamo_install.py --version 0.7.0 --cache-root /srv/srt-slurm/.cache --image host:/usr/bin/python3 --record /srv/srt-slurm/logs/JOBID_1A_<TIMESTAMP>/dynamo/agg-0.json)
export PATH="$(dirname "$srt_python"):$PATH"
exec /opt/nvidia/nsight-systems/bin/nsys profile -t cuda,nvtx --cuda-graph-trace=node -c cudaProfilerApi --capture-range-end stop -o /srv/srt-slurm/logs/JOBID_1A_<TIMESTAMP>/profiles/nsys_agg_0_node0 "$srt_python" -m dynamo.sglang --model-path /models/tiny-llama --served-model-name tiny-llama --tp-size 8 --enable-metrics
