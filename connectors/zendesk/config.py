"""``[sources.NAME]`` for ``system = "zendesk"``: the shared keys, with Zendesk's field ids."""

from __future__ import annotations

import re
from difflib import get_close_matches
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, field_validator

from bridge.framework.source import FieldRole, SourceConfig, WritebackConfig, spelled

__all__ = ["BUILT_IN_FIELDS", "ZendeskSourceConfig", "ZendeskWriteback"]

# A built-in ticket attribute or a custom field by its id
# (https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_fields/).
# Built-in: the names `sla-bridge fields` lists for Zendesk's system fields, each a ticket
# attribute the connector reads (organization and group by their sideloaded names; assignee,
# requester, brand, ticket_form and custom_status by the ticket's ..._id). Any other name reads
# nothing from any ticket, so it is refused rather than giving every ticket an empty value.
BUILT_IN_FIELDS = ("organization", "group", "type", "priority", "status", "subject", "description",
                   "assignee", "requester", "brand", "ticket_form", "custom_status")
# Names a user meets elsewhere for a built-in one: ticket_fields' own type names (the TYPE column
# of `sla-bridge fields`), and the ticket's ..._id attributes.
_ALIASES = {"tickettype": "type", "basic_priority": "priority", "ticket_type": "type",
            **{f"{name}_id": name for name in BUILT_IN_FIELDS}}
# Ids are positive 64-bit integers, written in ASCII digits without a leading zero: anything else
# ("custom_field:abc", "custom_field:٣", "custom_field:007") names no field Zendesk has, and the
# connector sends the id as a JSON integer.
_ID = re.compile(r"custom_field:[1-9][0-9]{0,17}")
_NOT_A_FIELD = 'is not a field: use a built-in field name such as "organization" or "custom_field:ID"'


def _field(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} {_NOT_A_FIELD}")
    if value in BUILT_IN_FIELDS or _ID.fullmatch(value):
        return value
    if value.lower().startswith("custom_field"):
        raise ValueError(f"{value!r} {_NOT_A_FIELD}")
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    guess = key if key in BUILT_IN_FIELDS else _ALIASES.get(key) or next(iter(get_close_matches(key, BUILT_IN_FIELDS, 1, 0.7)), None)
    hint = f' (did you mean "{guess}"?)' if guess else ""
    raise ValueError(f"{value!r} is not a field Zendesk tickets have{hint}. Use one of {', '.join(BUILT_IN_FIELDS)}, "
                     "or \"custom_field:ID\" with an id from `sla-bridge fields SOURCE`")


_FIELD = BeforeValidator(_field)
_CUSTOM_FIELD = spelled(_ID.pattern,
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
