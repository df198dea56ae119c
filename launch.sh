#!/usr/bin/env bash
# Starts `python -m musae_jax.main` (or another musae_jax program) as one or several JAX processes.
#
#   ./launch.sh [options] -- <arguments for python -m musae_jax.main>
#   ./launch.sh --module=musae_jax.tools.reproduce -- --suite=paper --midi_dir=DIR --out=DIR
#
# Options:
#   --local_processes=N      start N processes on this machine, coordinated on localhost
#                            (CPU devices, gloo collectives): how multi-process runs are tested
#   --devices_per_process=D  with --local_processes: D forced host (CPU) devices per process
#   --per_gpu                under SLURM: one process per GPU instead of one per node
#   --coordinator=HOST:PORT --num_processes=N --process_id=I
#                            explicit multi-process settings for any other scheduler
#   --python=PATH            the Python interpreter (default: .venv/bin/python if present)
#   --module=NAME            the program to start (default musae_jax.main; musae_jax.tools.reproduce
#                            takes the same multi-process flags)
#
# Under SLURM (inside an sbatch allocation) it runs `srun` with one task per node (or per GPU);
# each task's jax.distributed.initialize() reads coordinator, process count and id from SLURM's
# environment. See slurm/train.sbatch.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
local_processes=0
devices_per_process=1
per_gpu=0
coordinator=""
num_processes=0
process_id=-1
python="${PYTHON:-}"
module=musae_jax.main
if [[ -z "$python" ]]; then
  if [[ -x "$here/.venv/bin/python" ]]; then python="$here/.venv/bin/python"; else python=python3; fi
fi

while [[ $# -gt 0 ]]; do
  case "$1" in
    --local_processes=*) local_processes="${1#*=}" ;;
    --devices_per_process=*) devices_per_process="${1#*=}" ;;
    --per_gpu) per_gpu=1 ;;
    --coordinator=*) coordinator="${1#*=}" ;;
    --num_processes=*) num_processes="${1#*=}" ;;
    --process_id=*) process_id="${1#*=}" ;;
    --python=*) python="${1#*=}" ;;
    --module=*) module="${1#*=}" ;;
    --) shift; break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "launch.sh: unknown option $1 (arguments for the program go after --)" >&2; exit 2 ;;
  esac
  shift
done

main=("$python" -m "$module" "$@")
cd "$here"

if [[ "$local_processes" -gt 0 ]]; then
  # A free port for the coordinator on the loopback interface.
  port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  pids=()
  forward() { for p in "${pids[@]}"; do kill -s "$1" "$p" 2>/dev/null || true; done; }
  trap 'forward TERM' TERM
  trap 'forward INT' INT
  for ((i = 0; i < local_processes; i++)); do
    JAX_PLATFORMS=cpu \
    XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${devices_per_process}" \
      "${main[@]}" --coordinator_address="127.0.0.1:${port}" \
      --num_processes="$local_processes" --process_id="$i" \
      > >(sed -u "s/^/[process $i] /") 2>&1 &
    pids+=($!)
  done
  status=0
  for p in "${pids[@]}"; do
    # `wait` returns early when a trapped signal arrives: wait again until the child is gone.
    while kill -0 "$p" 2>/dev/null; do wait "$p" || true; done
    wait "$p" || status=$?
  done
  exit "$status"
fi

if [[ -n "$coordinator" ]]; then
  exec "${main[@]}" --coordinator_address="$coordinator" --num_processes="$num_processes" \
    --process_id="$process_id"
fi

if [[ -n "${SLURM_JOB_ID:-}" && -z "${SLURM_STEP_ID:-}" ]]; then
  if [[ "$per_gpu" == 1 ]]; then
    gpus="${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-1}}"
    exec srun --ntasks-per-node="${gpus##*:}" --gpus-per-task=1 "${main[@]}"
  fi
  exec srun --ntasks-per-node=1 "${main[@]}"
fi

exec "${main[@]}"
