"""Jira Service Management: the connector (system "jira"), its config model and its local sandbox."""
