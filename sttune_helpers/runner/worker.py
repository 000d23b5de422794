"""The entry point of each rank of a data-parallel run, started by torchrun (training/launch.py):

    python -m sttune_helpers.runner.worker [--config CONFIG] [--resume] RUN_DIR

It loads the run's config as the stage sees it and calls the training stage's ``train`` step in this
process; the launcher, in the process that started the stage, records the stage's completion.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import load_config
from ..core.reporting import show_on_console
from ..rundir import RunDir
from ..stages import training
from ..training.ranks import local_world_size, world_size


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sttune_helpers.runner.worker",
                                     description="One rank of the training stage (started by torchrun).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", type=Path, help="the RunConfig YAML (default: the run's config.yaml)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    import torch.distributed as dist

    show_on_console()  # the stage's progress on stdout, which torchrun hands to the launcher
    run = RunDir(args.run_dir.resolve())
    config = run.stage_config(load_config(args.config) if args.config else run.load_config(), training.NAME)
    config.train.nproc = local_world_size()  # as torchrun started this node's ranks
    config.train.nnodes = world_size() // config.train.nproc
    try:
        training.train(run, config, resume=args.resume)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    sys.exit(record(worker_main)())
