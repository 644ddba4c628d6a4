"""Issue 7's data-safety invariants, for any sequence of source files, hand edits, API
faults, lost answers, process deaths and runs (see ``tests/properties/machine.py``)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from syncd.sandbox.testing import SandboxProcess
from tests.profiles import NIGHTLY, examples
from tests.properties.known import OPEN_DEFECTS
from tests.properties.machine import Families, SyncMachine
from tests.properties.world import Launcher

#: Steps per example: enough for a file, a run, an edit, a fault and a death to meet.
STEPS = 20
#: Steps per example under the nightly profile.
NIGHTLY_STEPS = 30


def _run(
    sandbox: SandboxProcess,
    launcher: Launcher,
    tmp_path_factory: pytest.TempPathFactory,
    families: Families,
    *,
    max_examples: int,
) -> None:
    class Machine(SyncMachine):
        pass

    Machine.sandbox = sandbox
    Machine.launcher = launcher
    Machine.world_dirs = tmp_path_factory
    Machine.families = families
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=max_examples, stateful_step_count=NIGHTLY_STEPS if NIGHTLY else STEPS
        ),
    )


@pytest.mark.slow
@pytest.mark.skipif(not OPEN_DEFECTS, reason="no open defect: the full machine below covers it")
def test_invariants_hold_for_every_step_the_open_defects_allow(
    sandbox_process: SandboxProcess,
    launcher: Launcher,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _run(
        sandbox_process,
        launcher,
        tmp_path_factory,
        Families.without(OPEN_DEFECTS),
        max_examples=examples(ci=5, nightly=400),
    )


@pytest.mark.slow
@pytest.mark.xfail(
    bool(OPEN_DEFECTS),
    strict=True,
    reason=f"issue 7 points {sorted(OPEN_DEFECTS)}: the machine with every step finds them",
)
def test_invariants_hold_for_every_step(
    sandbox_process: SandboxProcess,
    launcher: Launcher,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _run(
        sandbox_process,
        launcher,
        tmp_path_factory,
        Families(),
        max_examples=examples(ci=5, nightly=400),
    )
