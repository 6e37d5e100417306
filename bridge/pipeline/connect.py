"""A source's connector, with its authenticated, retrying HTTP client: the one way to open one."""

from __future__ import annotations

import httpx

from bridge.config import Config
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.framework.contract import Connector
from bridge.framework.registry import connector_class

__all__ = ["open_connector"]


def open_connector(
    config: Config,
    name: str,
    *,
    transport: httpx.BaseTransport | None = None,
    policy: RetryPolicy | None = None,
    run_deadline: float | None = None,
) -> Connector:
    """The connector for source ``name``. Close it with ``connector.http.client.close()``.

    ``run_deadline`` is the ``time.monotonic()`` instant the run must stop by (its start plus
    ``http.max_run``; the policy's ``monotonic`` clock when a test passes its own): the source
    sends nothing past it and stops with ``RunBoundReached``. None for no bound (``check``).
    """
    source = config.sources[name]
    cls = connector_class(source.system, source=name)
    secret = config.source_secret(name)
    client = build_client(
        source.url, http=config.http, auth=cls.auth(source, secret), transport=transport, ca_bundle=config.ca_bundle_path()
    )
    http = SourceClient(
        name,
        client,
        policy or RetryPolicy.from_config(config.http),
        max_pages=config.http.max_pages,
        max_body_mb=config.http.max_body_mb,
        run_deadline=run_deadline,
    )
    return cls(name, source, http)
