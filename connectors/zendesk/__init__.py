"""Zendesk Support: the connector (system "zendesk"), its config model and its local sandbox."""

from __future__ import annotations

from connectors.zendesk.config import ZendeskSourceConfig
from connectors.zendesk.connector import ZendeskConnector

__all__ = ["ZendeskConnector", "ZendeskSourceConfig"]
