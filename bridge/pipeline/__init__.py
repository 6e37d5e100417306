"""The pipeline cron runs: pull every source, evaluate what changed, push the difference.

:mod:`~bridge.pipeline.run` orchestrates a locked run and records it;
:mod:`~bridge.pipeline.pull` commits each stream's pages with their cursors;
:mod:`~bridge.pipeline.evaluate` re-evaluates what changed; :mod:`~bridge.pipeline.plan`
(pure) and :mod:`~bridge.pipeline.push` turn clocks into journaled write-back;
:mod:`~bridge.pipeline.demo` runs it all on the sandboxes.
"""
