"""Zendesk Support: the connector (registered as system "zendesk") and its local sandbox."""

from __future__ import annotations

from connectors.zendesk.connector import ZendeskConnector

__all__ = ["ZendeskConnector"]
