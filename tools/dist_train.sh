#!/usr/bin/env bash
# Multi-process training with torchrun (see tools/torchrun.sh for NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON):
#   tools/dist_train.sh CONFIG GPUS [tools/train.py options]
exec bash "$(dirname "$0")/torchrun.sh" "$2" train.py "$1" "${@:3}"
