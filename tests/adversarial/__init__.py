"""The adversarial suite: the real CLI against a loopback Zendesk that misbehaves on purpose (docs/operations.md lists the cases)."""
