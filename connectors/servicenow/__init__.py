"""ServiceNow: the connector (system "servicenow"), its config model and its local sandbox."""

from __future__ import annotations

from connectors.servicenow.config import ServiceNowSourceConfig
from connectors.servicenow.connector import ServiceNowConnector

__all__ = ["ServiceNowConnector", "ServiceNowSourceConfig"]
