"""What every connector's sandbox and tests share.

- :mod:`connectors.kit.server`: the generic half of a sandbox (serving in-process and on
  loopback, the request log, fault injection, rate windows);
- :mod:`connectors.kit.story`: the one story every sandbox tells (customers, tickets, pauses,
  reopenings, breaches);
- :mod:`connectors.kit.conformance`: the test suite every registered connector with a sandbox
  must pass (pytest; only tests import it).
"""
