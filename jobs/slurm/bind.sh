#!/usr/bin/env bash
# Per-rank wrapper of Mimic's SLURM jobs: binds each rank to one GPU (CUDA_VISIBLE_DEVICES narrowed to
# the GPU of its node-local rank) when GPUs are visible, then runs the rank's command.
#
# SLURM sets CUDA_VISIBLE_DEVICES to the job's GPUs on the node (--gpus-per-node / --gres=gpu:N). With N
# ranks per node and N GPUs, node-local rank r gets GPU r, so Kokkos (which uses device 0 of what it
# sees) puts every rank on its own device. An already narrowed list (srun --gpus-per-task=1
# --gpu-bind=single:1) is left as it is. MIMIC_GPU_BIND=none turns this off; without visible GPUs
# (CPU nodes) nothing changes. MIMIC_GPUS_PER_NODE names the count where SLURM does not manage GPUs.
set -euo pipefail
local_rank=${SLURM_LOCALID:-${OMPI_COMM_WORLD_LOCAL_RANK:-${MPI_LOCALRANKID:-0}}}
if [ "${MIMIC_GPU_BIND:-auto}" != none ]; then
    devices=${CUDA_VISIBLE_DEVICES:-}
    if [ -z "$devices" ] && [ -n "${MIMIC_GPUS_PER_NODE:-}" ]; then
        devices=$(seq -s, 0 $((MIMIC_GPUS_PER_NODE - 1)))
    fi
    if [ -n "$devices" ] && [ "$devices" != NoDevFiles ]; then
        IFS=, read -r -a gpus <<<"$devices"
        export CUDA_VISIBLE_DEVICES=${gpus[$((local_rank % ${#gpus[@]}))]}
        # Kokkos 4 would otherwise map ranks to devices itself; with one visible device it is device 0.
        export KOKKOS_DEVICE_ID=0
    fi
fi
exec "$@"
