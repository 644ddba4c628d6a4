"""A faithful local implementation of the Inventory Device Serial API contract.

Run it with ``syncd sandbox`` (or ``python -m syncd.sandbox``); drive it from
tests with :class:`syncd.sandbox.testing.SandboxProcess`. See ``docs/sandbox.md``.
"""
