"""``[sources.NAME]`` for ``system = "jira"``: the shared keys, the service projects to pull, and Jira's field ids.

Facts behind each rule are in ``../shared/reference/jira-api.md`` (section numbers below).
"""

from __future__ import annotations

import re
from difflib import get_close_matches
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, ValidationInfo, field_validator

from bridge.engine.terms import duration_within
from bridge.framework.source import AuthConfig, FieldRole, SourceConfig, WritebackConfig

__all__ = [
    "BUILT_IN_FIELDS",
    "BY_NAME",
    "JSM_FIELDS",
    "JiraAuthConfig",
    "JiraSourceConfig",
    "JiraWriteback",
]

# Jira's own issue fields the connector reads, by the ids `/rest/api/3/field` gives them
# (`fields.priority.name`, `fields.issuetype.name`, `fields.status.name`, the assignee's and
# reporter's accountId, component names, labels). Any other built-in name would read nothing.
BUILT_IN_FIELDS = ("priority", "issuetype", "status", "assignee", "reporter", "components", "labels")
# JSM's own fields are custom fields whose id differs on every site and whose name is localised
# (reference §4.5, §11): the connector finds them by their schema.custom key, never by id or name.
JSM_FIELDS = {
    "organizations": "com.atlassian.servicedesk:sd-customer-organizations",
    "request_type": "com.atlassian.servicedesk:vp-origin",
}
_NAMES = (*BUILT_IN_FIELDS, *JSM_FIELDS)
# "name:Support tier": a custom field by its name as `sla-bridge fields SOURCE` lists it, resolved
# once per run through /rest/api/3/field (names are localised and may be shared; ids are not).
BY_NAME = "name:"
_NAME_LIMIT = 255  # Jira's limit on a custom field's name

# Names a user meets elsewhere for a supported one, compared without case, spaces, '-' or '_':
# the fields' display names ("Issue Type", "Request Type", "Component/s"), JSM's portal words, and
# the Zendesk names of the same things.
_ALIASES = {
    "type": "issuetype", "issuetypes": "issuetype", "tickettype": "issuetype",
    "component": "components", "component/s": "components",
    "label": "labels", "tag": "labels", "tags": "labels",
    "organization": "organizations", "organisation": "organizations", "organisations": "organizations",
    "org": "organizations", "customerorganization": "organizations",
    "customerorganizations": "organizations", "customer": "organizations",
    "requesttype": "request_type", "customerrequesttype": "request_type", "requesttypes": "request_type",
    "requester": "reporter", "raisedby": "reporter", "creator": "reporter",
    "assignedto": "assignee",
}
_SQUEEZED = {name.replace("_", ""): name for name in _NAMES}

# Custom field ids are "customfield_" and a positive number in ASCII digits (reference §4.5):
# anything else names no field on any site.
_ID = re.compile(r"customfield_[1-9][0-9]{0,17}")
# What people write for one: the JQL form cf[10010], Zendesk's custom_field:10010, a bare number.
_ID_LIKE = re.compile(r"(?:custom[ _-]?fields?[ _:-]*|cf\[)?0*([1-9][0-9]{0,17})\]?", re.IGNORECASE)
_FIELD_HELP = ('a custom field id such as "customfield_10010", or "name:FIELD NAME" '
               "(both as `sla-bridge fields SOURCE` lists them)")


def _control(text: str, *, allow_whitespace: bool = False) -> bool:
    allowed = "\t\n\r" if allow_whitespace else ""
    return any((ord(char) < 32 or ord(char) == 127) and char not in allowed for char in text)


def _id_guess(value: str) -> str | None:
    match = _ID_LIKE.fullmatch(value.strip())
    return f"customfield_{match.group(1)}" if match else None


def _field(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a field: use a field name such as \"organizations\", or {_FIELD_HELP}")
    if value in _NAMES or _ID.fullmatch(value):
        return value
    if value.startswith(BY_NAME):
        name = value[len(BY_NAME):]
        if not name.strip() or name != name.strip() or _control(name) or len(name) > _NAME_LIMIT:
            raise ValueError(f"{value!r} names no field: write \"name:\" and the field's name as `sla-bridge fields SOURCE` "
                             f"lists it (not blank, no spaces around it, no control characters, at most {_NAME_LIMIT} characters)")
        return value
    guess = _id_guess(value)
    if value.lower().startswith(("customfield", "custom_field", "cf[")) and not guess:
        raise ValueError(f'{value!r} is not a custom field id: write "customfield_" and the number, e.g. "customfield_10010" '
                         "(`sla-bridge fields SOURCE` lists them)")
    key = re.sub(r"[\s_-]", "", value.lower())
    close = get_close_matches(key, _SQUEEZED, 1, 0.75)
    guess = guess or _SQUEEZED.get(key) or _ALIASES.get(key) or (_SQUEEZED[close[0]] if close else None)
    hint = f' (did you mean "{guess}"?)' if guess else ""
    raise ValueError(f"{value!r} is not a field sla-bridge reads from Jira issues{hint}. Use one of {', '.join(_NAMES)}, "
                     f"{_FIELD_HELP}")


def _status_field(value: Any) -> Any:
    if value is None or (isinstance(value, str) and _ID.fullmatch(value)):
        return value
    guess = _id_guess(value) if isinstance(value, str) else None
    hint = f' (did you mean "{guess}"?)' if guess else ""
    raise ValueError(f"{value!r} is not a custom field id{hint}: write \"customfield_NNNNN\", the ID of a text or "
                     "select field from `sla-bridge fields SOURCE`")


# Jira's default project key rule: an upper-case letter, then upper-case letters, digits or '_',
# 2 to 10 characters in all. Issue keys in responses carry the key in this form.
_PROJECT = re.compile(r"[A-Z][A-Z0-9_]{1,9}")


def _project(value: Any) -> Any:
    if isinstance(value, str) and _PROJECT.fullmatch(value):
        return value
    guess = None
    if isinstance(value, str):
        candidate = value.strip().upper()
        issue_key = re.fullmatch(r"([A-Z][A-Z0-9_]{1,9})-[0-9]+", candidate)  # SUP-123 is an issue of project SUP
        candidate = issue_key.group(1) if issue_key else candidate
        guess = candidate if _PROJECT.fullmatch(candidate) else None
    hint = f' (did you mean "{guess}"?)' if guess else ""
    raise ValueError(f"{value!r} is not a Jira project key{hint}: write the key as Jira shows it in issue keys (\"SUP\" in SUP-123): "
                     "an upper-case letter, then upper-case letters, digits or '_', 2 to 10 characters")


def _outside_quotes(jql: str) -> tuple[str, bool]:
    """The JQL with each quoted text blanked out, and whether every quote was closed.

    A backslash escapes the next character, inside quotes and out, as in JQL.
    """
    kept: list[str] = []
    quote: str | None = None
    escaped = False
    for char in jql:
        if escaped:
            escaped = False
            kept.append(" ")
        elif char == "\\":
            escaped = True
            kept.append(" ")
        elif quote:
            if char == quote:
                quote = None
            kept.append(" ")
        elif char in "\"'":
            quote = char
            kept.append(" ")
        else:
            kept.append(char)
    return "".join(kept), quote is None and not escaped


def _jql(value: Any) -> Any:
    """An extra filter the connector ANDs in as ``project in (...) AND (<jql>) ORDER BY updated, key``.

    It must stay one closed term: an ORDER BY of its own, an unclosed quote or a stray ``)`` would
    break that query or widen it beyond the configured projects.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a JQL filter as text, got {value!r}")
    if not value.strip():
        raise ValueError("is empty: write a JQL filter such as 'type = \"Service Request\"', or remove the key to pull every issue of the projects")
    if _control(value, allow_whitespace=True):
        raise ValueError("holds a control character: write the filter as plain text (line breaks and tabs are fine)")
    bare, closed = _outside_quotes(value)
    if not closed:
        raise ValueError(f"{value!r} has a quote that is never closed: close it, or escape a literal quote as \\\"")
    if re.search(r"\border\s+by\b", bare, re.IGNORECASE):
        raise ValueError(f"{value!r} has an ORDER BY: remove it; sla-bridge orders the pull itself (by updated, then key), "
                         "and a second ORDER BY would break the query")
    depth = 0
    for char in bare:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth:
        raise ValueError(f"{value!r} has unbalanced parentheses: the filter is ANDed in as one term, so every '(' needs its ')'")
    return value


class JiraAuthConfig(AuthConfig):
    """Jira Cloud takes an API token with the account's email (basic), or an OAuth access token (bearer)."""

    @field_validator("email")
    @classmethod
    def _an_email(cls, email: str | None) -> str | None:
        if email is not None and "@" not in email:
            raise ValueError(f"{email!r} is not an email address: Jira Cloud's API tokens go with the Atlassian account's "
                             "email, e.g. \"sla-bot@example.com\"")
        return email

    @field_validator("username")
    @classmethod
    def _no_username(cls, username: str | None) -> str | None:
        if username is not None:
            raise ValueError("Jira Cloud knows the account by its email: write email = \"...\" instead of username")
        return username

    @field_validator("password_env", "password_file")
    @classmethod
    def _no_password(cls, password: str | None) -> str | None:
        # Password basic auth is gone from Jira Cloud (reference §1.1).
        if password is not None:
            raise ValueError("Jira Cloud does not take account passwords over its API: create an API token "
                             "(https://id.atlassian.com/manage-profile/security/api-tokens) and set email + token_env")
        return password


# OAuth (3LO) and scoped API tokens reach a site through api.atlassian.com, by its cloud id (reference §1.1, §1.2).
_GATEWAY = re.compile(r"/ex/jira/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _label_prefix(value: Any) -> Any:
    # Tags are Jira labels: one word, at most 255 characters, and sla-bridge's longest is
    # PREFIX + "breached". The characters are the shared rule's, which the planner relies on.
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9_-]*", value):
        raise ValueError(f"{value!r} cannot start a Jira label: labels are one word (no spaces); use only "
                         "lower-case letters, digits, '-' and '_', e.g. \"sla_\"")
    if len(value) + len("breached") > _LABEL_LIMIT:
        raise ValueError(f"is {len(value)} characters long: a Jira label has at most {_LABEL_LIMIT}, "
                         f"so keep the prefix to {_LABEL_LIMIT - len('breached')}")
    return value


_LABEL_LIMIT = 255


class JiraWriteback(WritebackConfig):
    status_field: Annotated[str | None, BeforeValidator(_status_field)] = None
    tag_prefix: Annotated[str, BeforeValidator(_label_prefix)] = "sla_"


class JiraSourceConfig(SourceConfig):
    system: Literal["jira"] = "jira"
    auth: JiraAuthConfig
    projects: list[Annotated[str, BeforeValidator(_project)]]
    jql: Annotated[str | None, BeforeValidator(_jql)] = None
    # How far before its watermark each search starts again: JQL compares minutes, and the search
    # shows a change seconds to minutes late (a busy site's index can lag longer: raise it there).
    overlap: Annotated[int, duration_within(2 * 24 * 3600, at_least=60,
                                            why=" (JQL compares whole minutes)")] = 600
    fields: dict[FieldRole, Annotated[str, BeforeValidator(_field)]] = {}
    writeback: JiraWriteback = JiraWriteback()

    @field_validator("url")
    @classmethod
    def _site_url(cls, url: str) -> str:
        # The APIs are at /rest/... of the site's own URL; a path in front of them is a 404 on every request.
        parts = urlsplit(url)
        if parts.hostname == "api.atlassian.com" and _GATEWAY.fullmatch(parts.path):
            return url
        if parts.path.strip("/"):
            raise ValueError(f"{url!r}: give the site's URL without a path, e.g. \"https://SITE.atlassian.net\" "
                             "(or \"https://api.atlassian.com/ex/jira/CLOUD_ID\" for an OAuth or scoped token)")
        return url

    @field_validator("auth")
    @classmethod
    def _oauth_through_the_gateway(cls, auth: JiraAuthConfig, info: ValidationInfo) -> JiraAuthConfig:
        # A 3LO access token is refused by SITE.atlassian.net: it is good only at api.atlassian.com (reference §1.2).
        host = urlsplit(info.data.get("url") or "").hostname or ""
        if auth.kind == "oauth_token" and host.endswith(".atlassian.net"):
            raise ValueError("an OAuth access token works only through Atlassian's gateway: set url = "
                             "\"https://api.atlassian.com/ex/jira/CLOUD_ID\" (the id from "
                             "https://api.atlassian.com/oauth/token/accessible-resources), or use email + token_env")
        return auth

    @field_validator("projects", mode="before")
    @classmethod
    def _a_list(cls, projects: Any) -> Any:
        if isinstance(projects, str):
            raise ValueError(f"{projects!r} is one text, not a list: write projects = [\"{projects}\"] (each key in quotes)")
        return projects

    @field_validator("projects")
    @classmethod
    def _distinct_projects(cls, projects: list[str]) -> list[str]:
        if not projects:
            raise ValueError("lists no project: name the service projects to pull by key, e.g. projects = [\"SUP\"]")
        seen: set[str] = set()
        for key in projects:
            if key in seen:
                raise ValueError(f"{key!r} is listed twice: list each project once")
            seen.add(key)
        return projects
