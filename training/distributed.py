"""Entry point for ``torchrun``: one training process of a distributed (DPDDP) run.

``finetrail train CONFIG --workspace W --nproc N`` starts N of these on this machine. Several
machines: run the same command on each, with the same config and workspace path (rank 0 writes)::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_endpoint HOST:29500 \\
        -m finetrail.training.distributed CONFIG --workspace W [--check-dp]

Each process reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from the environment (set by
torchrun); only rank 0 tracks in MLflow and writes evidence.
"""

from __future__ import annotations

import sys

from finetrail.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
