#!/usr/bin/env bash
# The custom benchmark of job 0 on node node0, written by the srt-slurm agent
# (benchmark.type: custom; docs/benchmarking.md). Its output goes to /srv/srt-slurm/logs/JOBID_1P_2D_<TIMESTAMP>/logs/custom-benchmark.log.
set -uo pipefail
exec >>/srv/srt-slurm/logs/JOBID_1P_2D_<TIMESTAMP>/logs/custom-benchmark.log 2>&1
export SRT_ENDPOINT_URL=http://node0:10006
export SRT_MODEL=tiny-llama
export SRT_RESULTS_DIR=/srv/srt-slurm/logs/JOBID_1P_2D_<TIMESTAMP>/results
export SRT_FRONTEND_URL=http://node0:10006
export AIPERF_ARTIFACT_DIR=/srv/srt-slurm/logs/JOBID_1P_2D_<TIMESTAMP>/results/aiperf
mkdir -p "$AIPERF_ARTIFACT_DIR"
cd /srv/srt-slurm/logs/JOBID_1P_2D_<TIMESTAMP>/results
echo "[srt] $(date -u +%Y-%m-%dT%H:%M:%SZ) custom benchmark on ${SLURMD_NODENAME:-$(hostname)}: "'my-bench --url "$SRT_FRONTEND_URL" --out "$AIPERF_ARTIFACT_DIR"'
bash -lc 'my-bench --url "$SRT_FRONTEND_URL" --out "$AIPERF_ARTIFACT_DIR"'
rc=$?
echo "[srt] $(date -u +%Y-%m-%dT%H:%M:%SZ) custom benchmark exited with code $rc"
exit "$rc"
