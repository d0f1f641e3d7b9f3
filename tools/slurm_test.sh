#!/usr/bin/env bash
# Testing on a Slurm cluster (see tools/srun.sh for GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PYTHON):
#   tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py options]
exec bash "$(dirname "$0")/srun.sh" "$1" "$2" test.py "$3" "$4" "${@:5}"
