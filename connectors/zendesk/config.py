"""``[sources.NAME]`` for ``system = "zendesk"``: the shared keys, with Zendesk's field ids."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import field_validator

from bridge.framework.source import FieldRole, SourceConfig, WritebackConfig, spelled

__all__ = ["ZendeskSourceConfig", "ZendeskWriteback"]

# A built-in ticket attribute ("organization", "group", "type", "priority", ...) or a custom
# field by its id (https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_fields/).
# Ids are positive 64-bit integers, written in ASCII digits without a leading zero: anything else
# ("custom_field:abc", "custom_field:٣", "custom_field:007") names no field Zendesk has, and the
# connector sends the id as a JSON integer.
_ID = r"custom_field:[1-9][0-9]{0,17}"
_FIELD = spelled(rf"[a-z][a-z_]*|{_ID}",
                 'is not a field: use a built-in field name such as "organization" or "custom_field:ID"')
_CUSTOM_FIELD = spelled(_ID,
                        'is not a custom field: write "custom_field:ID" (the ID from `sla-bridge fields SOURCE`)')


class ZendeskWriteback(WritebackConfig):
    status_field: Annotated[str | None, _CUSTOM_FIELD] = None


class ZendeskSourceConfig(SourceConfig):
    system: Literal["zendesk"] = "zendesk"
    fields: dict[FieldRole, Annotated[str, _FIELD]] = {}
    writeback: ZendeskWriteback = ZendeskWriteback()

    @field_validator("url")
    @classmethod
    def _account_url(cls, url: str) -> str:
        # The API is at /api/v2 of the account's own URL: a path in front of it is a 404 on every request.
        if urlsplit(url).path.strip("/"):
            raise ValueError(f"{url!r}: give the account's URL without a path, e.g. \"https://SUBDOMAIN.zendesk.com\"")
        return url
