"""Hypothesis profiles for the property and fuzz tests (loaded by ``tests/conftest.py``).

- ``ci`` (the default): few examples, derandomized and without the example database,
  so every CI run tries the same inputs; no shrinking, so a failure costs no more
  time than the example that found it (the falsifying steps are printed as found,
  with the ``@reproduce_failure`` blob).
- ``nightly`` (``SYNCD_HYPOTHESIS_PROFILE=nightly``): many more examples from a
  random seed (printed on failure: rerun with ``--hypothesis-seed``), shrinking on,
  the local example database on, and the 1 GB memory test.

A test asks for its number of examples with ``examples(ci, nightly)``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

PROFILE_ENV = "SYNCD_HYPOTHESIS_PROFILE"
PROFILE = os.environ.get(PROFILE_ENV, "ci")

_SLOW_WORLD = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=_SLOW_WORLD,
)
settings.register_profile(
    "nightly",
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_WORLD,
)
if PROFILE not in ("ci", "nightly"):
    raise RuntimeError(f"{PROFILE_ENV}={PROFILE!r}: use ci or nightly")
settings.load_profile(PROFILE)

NIGHTLY = PROFILE == "nightly"


def examples(ci: int, nightly: int) -> int:
    """How many examples a test runs under the active profile."""
    return nightly if NIGHTLY else ci
