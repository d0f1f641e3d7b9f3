#!/usr/bin/env bash
# Training on a Slurm cluster (see tools/srun.sh for GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PYTHON):
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options]
exec bash "$(dirname "$0")/srun.sh" "$1" "$2" train.py "$3" --work-dir="$4" "${@:5}"
