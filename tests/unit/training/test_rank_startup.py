"""The start-up check of a rank on one of several machines (training/rank_startup.py), against a
store this test hosts as torchrun's agent on node 0 would: every rank ready passes, a rank that never
comes is named after the timeout, and a store that does not answer is named."""

import socket
import time
from datetime import timedelta

import pytest

from sttune_helpers.training.errors import DistributedTrainingError
from sttune_helpers.training.rank_startup import ready_key, wait_for_every_rank


@pytest.fixture
def agent_store(monkeypatch):
    """A TCPStore hosted here, and the environment torchrun gives rank 0 of 3 that shares it."""
    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=10))
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "RANK": "0", "WORLD_SIZE": "3",
                        "LOCAL_RANK": "0", "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RUN_ID": "run-a",
                        "TORCHELASTIC_RESTART_COUNT": "0"}.items():
        monkeypatch.setenv(name, value)
    return store


def test_every_rank_ready_passes_and_marks_this_rank(agent_store):
    agent_store.set(ready_key(1), "1")
    agent_store.set(ready_key(2), "1")
    wait_for_every_rank(timeout_s=10)
    assert agent_store.check(["sttune/started/run-a/0/0"])


def test_ranks_that_never_come_are_named_after_the_timeout(agent_store):
    agent_store.set(ready_key(1), "1")
    started = time.monotonic()
    with pytest.raises(DistributedTrainingError, match=r"^rank 2 of 3 did not get ready to train within "
                                                         r"train.rdzv_timeout=1 s .*on its node names the error"):
        wait_for_every_rank(timeout_s=1)
    assert 1 <= time.monotonic() - started < 10
    agent_store.delete_key(ready_key(1))
    with pytest.raises(DistributedTrainingError, match="ranks 1, 2 of 3 .* on their nodes names the error"):
        wait_for_every_rank(timeout_s=1)


def test_a_store_that_does_not_answer_is_named(agent_store, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("MASTER_PORT", str(port))
    with pytest.raises(DistributedTrainingError, match=rf"could not reach torchrun's store at 127.0.0.1:{port}"):
        wait_for_every_rank(timeout_s=2)


def test_without_the_agent_store_the_check_steps_aside(agent_store, monkeypatch):
    # TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1: rank 0 hosts its own store at MASTER_PORT in init_process_group.
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")
    wait_for_every_rank(timeout_s=1)  # ranks 1 and 2 never came, and no error
    assert not agent_store.check([ready_key(0)])
