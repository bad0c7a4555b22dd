#!/bin/bash
# dfer train on a Slurm cluster: one torchrun per node, one training process per GPU (DDP over NCCL).
#
#   sbatch --nodes 2 --gpus-per-node 4 scripts/slurm_train.sh models/train_abaw.yaml \
#          --set data.root=/data/AffWild2 --out /shared/out/abaw
#
# The output folder must be on a filesystem every node sees (rank 0 writes it, every rank reads
# last/ on resume). When it already holds last/, the job resumes from there, so a requeued or
# chained job (--max-steps N to fit a time slot) continues exactly where the previous one stopped.
#SBATCH --job-name=dfer-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

CONFIG=${1:?usage: sbatch scripts/slurm_train.sh CONFIG [dfer train options, --out DIR required]}
shift
OUT=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [[ ${args[i]} == --out || ${args[i]} == --output-dir ]] && OUT=${args[i + 1]:-}  # --output-dir: the old name
done
[[ -n $OUT ]] || { echo "slurm_train.sh: pass --out on a shared filesystem" >&2; exit 2; }

PYTHON=${DFER_PYTHON:-.venv/bin/python}
GPUS=${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-1}}
GPUS=${GPUS##*:}  # "h100:4" -> 4
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
PORT=${DFER_RDZV_PORT:-29500}
RESUME=()
[[ -f $OUT/last/train_state.json ]] && RESUME=(--resume "$OUT/last")

THREADS=$(( ${SLURM_CPUS_PER_TASK:-$GPUS} / GPUS ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( THREADS > 0 ? THREADS : 1 ))}
srun --ntasks-per-node=1 "$PYTHON" -m torch.distributed.run \
    --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS" \
    --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$HEAD:$PORT" \
    -m dfer_ros.cli.train "$CONFIG" --no-progress "${RESUME[@]}" "$@"
