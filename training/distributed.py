"""Entry point for ``torchrun``: one training process of a distributed (DPDDP) run.

``finetrail train WORKSPACE CONFIG --nproc N`` starts N of these on this machine. Several
machines: run the same command on each, with the same config and workspace path (rank 0 writes)::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_endpoint HOST:29500 \\
        -m finetrail.training.distributed WORKSPACE CONFIG [--check-dp]

Each process reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from the environment (set by
torchrun); only rank 0 tracks in MLflow and writes evidence.
"""

from __future__ import annotations

import logging
import os
import sys

from finetrail.cli import main


def _leave(code: int) -> None:
    """Exit without running C++ static destructors.

    The run is complete by now: evidence fsync'd, the MLflow run ended, the process group
    destroyed. Under load, a destructor of torch's distributed backend has aborted a finished
    worker at interpreter exit ("terminate called without an active exception", SIGABRT), and
    torchrun then reports the whole run as failed. Flush what Python holds, then leave.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _leave(main(["train", *sys.argv[1:]]))
