"""The conformance suite for every registered connector that ships a sandbox.

A new connector gets all of it by registering (connectors/kit/conformance.py lists the cases).
"""

from __future__ import annotations

from bridge.framework.registry import sandbox_systems
from connectors.kit.conformance import sandbox_harness, suite_for

for _system in sandbox_systems():
    _suite = suite_for(sandbox_harness(_system))
    globals()[_suite.__name__] = _suite
