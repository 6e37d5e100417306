"""Jira Service Management: the connector (system "jira"), its config model and its local sandbox."""

from __future__ import annotations

from connectors.jira.config import JiraSourceConfig
from connectors.jira.connector import JiraConnector

__all__ = ["JiraConnector", "JiraSourceConfig"]
