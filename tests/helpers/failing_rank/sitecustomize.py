"""Makes the ranks that torchrun starts on one node fail, for the tests of a rank that fails while the
ranks on other nodes wait for it: a test puts this folder first on that node's PYTHONPATH with
STTUNE_TEST_FAIL_AT_STEP=N (raise at training step N) or STTUNE_TEST_FAIL_AT_START=1 (exit as the
rank starts, before the process group forms). Python imports sitecustomize at start-up in every
process there; only torchrun's workers (LOCAL_RANK set) are changed, and sttune itself knows nothing of it."""

import os
import sys

FAIL_AT_STEP = os.environ.get("STTUNE_TEST_FAIL_AT_STEP")
FAIL_AT_START = os.environ.get("STTUNE_TEST_FAIL_AT_START") == "1"

if FAIL_AT_START and "LOCAL_RANK" in os.environ:
    # As a rank dies that crashes while starting: a line on stderr, no Python exception to record.
    print(f"injected start-up failure on global rank {os.environ['RANK']} (tests/helpers/failing_rank)",
          file=sys.stderr, flush=True)
    os._exit(3)

if FAIL_AT_STEP and "LOCAL_RANK" in os.environ:
    from transformers.trainer_callback import CallbackHandler

    class InjectedFailure(RuntimeError):
        """The failure this helper raises, recognisable in the output."""

    step_end = CallbackHandler.on_step_end

    def on_step_end(self, args, state, control):
        if state.global_step >= int(FAIL_AT_STEP):
            raise InjectedFailure(f"injected at step {state.global_step} on global rank {os.environ['RANK']} "
                                  "(tests/helpers/failing_rank)")
        return step_end(self, args, state, control)

    CallbackHandler.on_step_end = on_step_end
