#!/usr/bin/env bash
# GPU discovery script for Spark (spark.{executor,worker,driver}.resource.gpu.discoveryScript).
# Prints the ResourceInformation JSON Spark expects on stdout, e.g. {"name":"gpu","addresses":["0","1"]}.
#
# Addresses are the GPU indexes nvidia-smi reports. When the node isolates GPUs per container
# (YARN with GPU isolation, Kubernetes device plugin, docker --gpus), nvidia-smi only lists the
# container's GPUs, renumbered from 0, which is what Spark must hand out. When CUDA_VISIBLE_DEVICES
# is set, the addresses are the CUDA ordinals 0..k-1 a process with that environment sees.
# Usage: getGpusResources.sh [RESOURCE_NAME]   (default name: gpu)
set -euo pipefail
name="${1:-gpu}"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "getGpusResources.sh: nvidia-smi not found on $(hostname): this node has no NVIDIA driver," \
       "so it cannot offer '${name}' resources; drop the GPU settings for it" >&2
  exit 1
fi
if ! ids=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>&1); then
  echo "getGpusResources.sh: nvidia-smi failed on $(hostname): ${ids}" >&2
  exit 1
fi
ids=$(printf '%s\n' "$ids" | tr -d ' \r' | grep -E '^[0-9]+$' || true)
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  # CUDA renumbers the visible devices 0..k-1 inside the process: those ordinals are the addresses.
  k=$(tr ',' '\n' <<<"${CUDA_VISIBLE_DEVICES}" | grep -c . || true)
  ids=$(if [ "$k" -gt 0 ]; then seq 0 $((k - 1)); fi)
fi
if [ -z "$ids" ]; then
  echo "getGpusResources.sh: no GPU visible on $(hostname) (nvidia-smi lists none" \
       "${CUDA_VISIBLE_DEVICES:+within CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES})" >&2
  exit 1
fi
addresses=$(printf '"%s",' $ids)
printf '{"name": "%s", "addresses": [%s]}\n' "$name" "${addresses%,}"
