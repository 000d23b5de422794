"""Inside a rank of a run on several machines: wait until every rank is ready to train before the
trainer forms the process group, so that a rank that failed while starting stops the others within
train.rdzv_timeout rather than transformers' ddp_timeout (30 minutes).

torchrun's agent on each node watches only its own ranks; when a rank on node 1 dies loading its data
or model, node 0's ranks would wait in init_process_group for it. Here each rank sets a key in the
store that torchrun's c10d rendezvous shares with the ranks (hosted by node 0's agent at MASTER_ADDR /
MASTER_PORT) and waits for every rank's key; one that never comes is named in the error."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from ..core.reporting import get_logger
from . import ranks
from .errors import DistributedTrainingError

log = get_logger(__name__)

# How often a waiting rank looks for the ranks still missing.
POLL_INTERVAL_S = 0.5


def ready_key(rank: int) -> str:
    """The key rank ``rank`` sets in the store once it is ready, unique to this run and attempt."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return f"sttune/started/{run_id}/{restart}/{rank}"


def shares_agent_store() -> bool:
    """True when torchrun's workers reach the agent's store (c10d rendezvous, the default): with
    TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 rank 0 hosts the store in init_process_group instead."""
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True) and "MASTER_ADDR" in os.environ


def wait_for_every_rank(timeout_s: float) -> None:
    """Mark this rank ready and wait up to ``timeout_s`` seconds for the others; raise a
    DistributedTrainingError naming the ranks that never got ready."""
    if not shares_agent_store():
        log.warning("torchrun's store is not shared with the ranks (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1): a rank "
                    "that fails while starting is noticed only after transformers' ddp_timeout")
        return
    from torch.distributed import TCPStore

    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    world_size, this_rank = ranks.world_size(), ranks.rank()
    started = time.monotonic()
    try:
        store = TCPStore(host, port, is_master=False, timeout=timedelta(seconds=timeout_s), wait_for_workers=False)
        store.set(ready_key(this_rank), "1")
        missing = list(range(world_size))
        while missing:
            missing = [r for r in missing if not store.check([ready_key(r)])]
            if not missing or time.monotonic() - started > timeout_s:
                break
            time.sleep(POLL_INTERVAL_S)
    except (RuntimeError, OSError) as error:  # the store's host, node 0's torchrun, went away
        raise DistributedTrainingError(
            f"rank {this_rank} could not reach torchrun's store at {host}:{port} (MASTER_ADDR:MASTER_PORT), or lost "
            f"it, while waiting for the other ranks to get ready ({type(error).__name__}: {error}): node 0's torchrun, "
            "which hosts it, stopped; the output of `sttune train` on node 0 names its error") from error
    if missing:
        several = len(missing) > 1
        raise DistributedTrainingError(
            f"rank{'s' if several else ''} {', '.join(map(str, missing))} of {world_size} did not get ready to train "
            f"within train.rdzv_timeout={timeout_s:g} s (rank {this_rank} waited {time.monotonic() - started:.0f} s): "
            f"{'they' if several else 'it'} failed while starting or {'are' if several else 'is'} still loading; the "
            f"output of `sttune train` on {'their nodes' if several else 'its node'} names the error")
    if ranks.is_rank_zero():
        log.info(f"all {world_size} ranks ready to train after {time.monotonic() - started:.1f} s")
