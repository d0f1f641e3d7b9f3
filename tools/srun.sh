#!/usr/bin/env bash
# What slurm_train.sh and slurm_test.sh share: run a tool on a Slurm cluster, one task per GPU:
#   [GPUS=8] [GPUS_PER_NODE=8] tools/srun.sh PARTITION JOB_NAME TOOL.py [tool arguments]
# CPUS_PER_TASK and SRUN_ARGS (extra srun options) are read from the environment. PYTHON picks the interpreter.
# Preemption: on SIGTERM (Slurm's preemption / time limit) or SIGUSR1 training saves iter_<N>.pth at the current
# iteration and exits 143 / 138; re-running the command with --auto-resume continues there. For a warning well
# before the time limit, add SRUN_ARGS='--signal=USR1@120' (seconds ahead of the kill).
set -x
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec srun -p "$1" \
    --job-name="$2" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS:-8}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$(dirname "$0")/$3" "${@:4}" --launcher=slurm
