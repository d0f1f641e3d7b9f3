#!/usr/bin/env bash
# Multi-process testing with torchrun (see tools/torchrun.sh for NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON):
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options]
exec bash "$(dirname "$0")/torchrun.sh" "$3" test.py "$1" "$2" "${@:4}"
