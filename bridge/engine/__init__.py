"""The pure SLA engine: data in, data out, no I/O and no clock reads (``now`` is passed in).

- :mod:`~bridge.engine.hours` and :mod:`~bridge.engine.durations`: the calendar keys and
  durations as a config writes them;
- :mod:`~bridge.engine.terms`: the schema of calendars, policies and credit terms;
- :mod:`~bridge.engine.calendar`: business time in a time zone, with holidays;
- :mod:`~bridge.engine.policy`: which policy applies to a ticket;
- :mod:`~bridge.engine.evaluator`: where each SLA clock stands;
- :mod:`~bridge.engine.credits`: what missed targets cost, per customer and period.

The conventions are in docs/sla-engine.md.
"""
