#!/usr/bin/env bash
# What dist_train.sh and dist_test.sh share: run a tool under torchrun, one process per GPU (or per CPU worker
# without CUDA, on gloo):   tools/torchrun.sh NPROC TOOL.py [tool arguments]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node. PYTHON picks the interpreter.
NPROC=$1
TOOL=$2
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$(dirname "$0")/$TOOL" "${@:3}" --launcher pytorch
