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
if ! /usr/bin/python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("ai-dynamo") != sys.argv[1])' 0.7.0 2>/dev/null; then
  cache=/srv/srt-slurm/.cache/ai-dynamo-0.7.0
  if [ ! -f "$cache/.complete" ]; then
    echo "[srt] installing ai-dynamo=="0.7.0" into $cache (once per version)"
    mkdir -p "$cache"
    (
      flock 9
      if [ ! -f "$cache/.complete" ]; then
        /usr/bin/python3 -m pip install --quiet --target "$cache" ai-dynamo==0.7.0 ai-dynamo-runtime==0.7.0
        touch "$cache/.complete"
      fi
    ) 9>"$cache.lock"
  fi
  export PYTHONPATH="$cache${PYTHONPATH:+:$PYTHONPATH}"
fi
exec /opt/nvidia/nsight-systems/bin/nsys profile -t cuda,nvtx --cuda-graph-trace=node -c cudaProfilerApi --capture-range-end stop -o /srv/srt-slurm/logs/JOBID_1A_<TIMESTAMP>/profiles/nsys_agg_0_node0 /usr/bin/python3 -m dynamo.sglang --model-path /models/tiny-llama --served-model-name tiny-llama --tp-size 8
