"""The edges: where sla-bridge meets the machine and the network.

Secrets (:mod:`~bridge.edges.credentials`), logs (:mod:`~bridge.edges.logs`), the one HTTP
layer every source sends through (:mod:`~bridge.edges.http`), the SQLite store
(:mod:`~bridge.edges.store`) and the run lock (:mod:`~bridge.edges.lock`). None of them knows a
helpdesk or an SLA rule.
"""
