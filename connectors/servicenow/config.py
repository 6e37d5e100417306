"""``[sources.NAME]`` for ``system = "servicenow"``: the shared keys, the table to pull, its filter and its columns.

Facts behind each rule are in ``../shared/reference/servicenow-api.md`` (section numbers below).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, field_validator, model_validator

from bridge.framework.source import (
    Account,
    AuthConfig,
    EnvName,
    FieldRole,
    FilePath,
    SourceConfig,
    WritebackConfig,
    is_loopback,
)

__all__ = [
    "ServiceNowAuthConfig",
    "ServiceNowSourceConfig",
    "ServiceNowWriteback",
]

# Instances live at INSTANCE.service-now.com, government-cloud ones at INSTANCE.servicenowservices.com
# (reference §1). servicenow.com itself is the vendor's site, whose docs write instance.servicenow.com.
_INSTANCE_DOMAINS = ("service-now.com", "servicenowservices.com")
_VENDOR_SITE = "servicenow.com"
_VENDOR_HOSTS = ("", "www", "docs", "developer", "support", "community", "signon")

# A table's name as sys_db_object holds it: lower case, at most 80 characters (u_ for custom tables,
# x_vendor_app_ for scoped ones).
_TABLE = re.compile(r"[a-z][a-z0-9_]{0,79}")
_COLUMN = re.compile(r"[a-z][a-z0-9_]{0,79}")
# One dot-walk (``company.name``): the Table API returns it under that very key (reference §2.2).
_FIELD = re.compile(r"[a-z][a-z0-9_]{0,79}(?:\.[a-z][a-z0-9_]{0,79})?")

# The journals: comments are seen by the customer, work notes are the internal ones sla-bridge
# writes its notes into (reference §5.1); neither holds a value that could be read back.
_JOURNALS = {
    "comments": "is the customer-visible journal (Additional comments): every write would be a message to the customer",
    "work_notes": "is the internal journal sla-bridge posts its notes into (writeback.notes); a status needs a column of its own",
    "comments_and_work_notes": "is a journal, not a column: it holds no value sla-bridge could read back",
}
# Columns the bridge reads to run the clocks: writing its verdict there would move them.
_READ_FOR_CLOCKS = ("state", "incident_state", "hold_reason", "priority", "active", "opened_at", "resolved_at", "closed_at")
_STATUS_HELP = 'write the name of a string column of the table, e.g. "u_sla_status" (as `sla-bridge fields SOURCE` lists it)'


def _control(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def _guess_column(value: str) -> str | None:
    """A column name for what was written: lower case, '_' for spaces, ``u_`` in front of a label."""
    text = value.strip()
    squeezed = re.sub(r"[^a-z0-9_.]+", "_", text.lower()).strip("_")
    if " " in text and not squeezed.startswith(("u_", "x_")):
        squeezed = "u_" + squeezed  # "SLA status" is the label; ServiceNow names the column u_sla_status
    return squeezed if _FIELD.fullmatch(squeezed) else None


def _hint(guess: str | None, value: Any) -> str:
    return f' (did you mean "{guess}"?)' if guess and guess != value else ""


def _table(value: Any) -> Any:
    if isinstance(value, str) and _TABLE.fullmatch(value):
        return value
    guess = None
    if isinstance(value, str):
        candidate = value.strip().lower()
        candidate = re.sub(r"^/?(?:api/now/(?:v[12]/)?table/)", "", candidate)  # a pasted API path
        candidate = re.sub(r"(?:_list)?\.do$", "", candidate)  # a pasted form or list page (incident_list.do)
        guess = candidate if _TABLE.fullmatch(candidate) else None
    raise ValueError(f"{value!r} is not a table name{_hint(guess, value)}: write the table's name as ServiceNow "
                     "stores it, e.g. \"incident\", \"sn_customerservice_case\" or \"sc_req_item\" (lower case, letters, "
                     "digits and '_', at most 80 characters)")


def _field(value: Any) -> Any:
    if isinstance(value, str) and _FIELD.fullmatch(value):
        return value
    guess = _guess_column(value) if isinstance(value, str) else None
    if isinstance(value, str) and value.count(".") > 1:
        guess = None
        why = "sla-bridge follows one reference at most (\"company.name\"), not a chain"
    else:
        why = ("write a column name as `sla-bridge fields SOURCE` lists it (\"company\", \"u_support_tier\"), "
               "or one dot-walk through a reference (\"company.name\")")
    raise ValueError(f"{value!r} is not a column of the table{_hint(guess, value)}: {why}")


def _status_field(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a column name: {_STATUS_HELP}")
    if value in _JOURNALS:
        raise ValueError(f"{value!r} {_JOURNALS[value]}: {_STATUS_HELP}")
    if value in _READ_FOR_CLOCKS:
        raise ValueError(f"{value!r} is a field sla-bridge reads to run the clocks: writing the SLA status there would "
                         f"move them; {_STATUS_HELP}")
    if value.startswith("sys_"):
        raise ValueError(f"{value!r} is a system field: the instance sets sys_ fields itself and refuses them to "
                         f"integrations (reference §5.1); {_STATUS_HELP}")
    if "." in value and _FIELD.fullmatch(value):
        raise ValueError(f"{value!r} is a dot-walk into another record: sla-bridge writes a column of the table itself; "
                         f"{_STATUS_HELP}")
    if _COLUMN.fullmatch(value):
        return value
    guess = _guess_column(value)
    guess = guess if guess and _COLUMN.fullmatch(guess) else None
    raise ValueError(f"{value!r} is not a column name{_hint(guess, value)}: {_STATUS_HELP}")


def _query(value: Any) -> Any:
    """An encoded query the connector puts in front of its own terms: ``<query>^sys_updated_on>=...``.

    It must stay one group ANDed in. The keyset paging repeats it in each ``^NQ`` group of the
    connector's query (reference §2.6), so a group of its own would pull records outside it, and
    an ORDERBY of its own would come before the connector's and break the paging order.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an encoded query as text, got {value!r}")
    if not value.strip():
        raise ValueError("is empty: write an encoded query such as \"category=network\", "
                         "or remove the key to pull every record of the table")
    if _control(value):
        raise ValueError("holds a control character (a line break or a tab): an encoded query is one line, "
                         "its terms joined by '^'")
    if value != value.strip():
        raise ValueError(f"{value!r} starts or ends with a space, which ServiceNow would read as part of a value: remove it")
    if re.search(r"javascript:", value, re.IGNORECASE):
        raise ValueError(f"{value!r} runs a script (javascript:): gs.dateGenerate() and its kin read dates in the API "
                         "user's time zone, so the filter's window would move with that user's profile (reference §2.3). "
                         "Write plain UTC date-times instead, e.g. \"opened_at>=2026-01-01 00:00:00\"")
    if value.startswith("^") or value.endswith("^"):
        raise ValueError(f"{value!r} starts or ends with '^': sla-bridge joins the filter to its own terms with '^' itself; "
                         "remove the outer '^'")
    if re.search(r"(?:^|\^)ORDERBY", value):
        raise ValueError(f"{value!r} has an ORDERBY: remove it; sla-bridge orders the pull itself (by sys_updated_on, then "
                         "sys_id) and pages by that order, which an ORDERBY of the filter would come before")
    if "^NQ" in value:
        raise ValueError(f"{value!r} has ^NQ (a second query): sla-bridge adds its own terms to one group only, so the "
                         "other group would pull records of the whole table; write the alternatives with ^OR instead")
    moving = re.search(r"(?:^|\^|\^OR)(active|state|incident_state|hold_reason)(?=[!=<>]|IN|NOT|ISEMPTY|ISNOTEMPTY)", value)
    if moving:
        raise ValueError(f"{value!r} filters on {moving.group(1)}, which a record changes by being worked on: a record that "
                         "leaves the filter (resolved, closed, cancelled) would never be pulled again and its clock would run "
                         "on in the store. Filter on what stays (category, company, a service), and map statuses instead")
    if re.search(r"\^EQ(?:\^|$)", value):
        raise ValueError(f"{value!r} has ^EQ, the end-of-query mark of a list URL: remove it; sla-bridge adds its own terms "
                         "after the filter")
    return value


def _refuse_inline(value: Any) -> Any:
    if value is not None:
        raise ValueError("a secret may not be written in the config file; name where it is instead: "
                         "client_secret_env = \"ENV_VAR_NAME\" or client_secret_file = \"/path/to/file\"")
    return value


_TAKES = ("ServiceNow takes username + password_env (basic auth), or an OAuth client's client_id + "
          "client_secret_env (client credentials); each *_env may be a *_file instead")


class ServiceNowAuthConfig(AuthConfig):
    """Basic auth with a user's name and password, or OAuth client credentials, which sla-bridge
    exchanges for an access token at ``/oauth_token.do`` itself (reference §1)."""

    client_id: Account = None
    client_secret_env: EnvName = None
    client_secret_file: FilePath = None
    client_secret: Annotated[Any, BeforeValidator(_refuse_inline)] = None

    @field_validator("token_env", "token_file")
    @classmethod
    def _no_api_token(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(f"ServiceNow's API keys (x-sn-apikey) are not supported: {_TAKES}")
        return value

    @field_validator("oauth_token_env", "oauth_token_file")
    @classmethod
    def _no_access_token(cls, value: str | None) -> str | None:
        # A ServiceNow access token lives 30 minutes (reference §1): one written down would stop
        # every run after that, so sla-bridge fetches its own from the client's credentials.
        if value is not None:
            raise ValueError("a ServiceNow access token expires after 30 minutes, so sla-bridge fetches its own: set "
                             "client_id + client_secret_env (OAuth client credentials) instead, or username + password_env")
        return value

    @field_validator("token", "api_token", "oauth_token", "access_token", mode="before")
    @classmethod
    def _no_inline_token(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError(f"a secret may not be written in the config file, and ServiceNow takes no token: {_TAKES}")
        return value

    @field_validator("email")
    @classmethod
    def _no_email(cls, email: str | None) -> str | None:
        if email is not None:
            raise ValueError("ServiceNow knows the account by its user name (User ID), even when it looks like an email: "
                             "write username = \"...\" instead of email")
        return email

    @model_validator(mode="after")
    def _one_kind(self) -> ServiceNowAuthConfig:
        basic = self.password_env is not None or self.password_file is not None
        client = self.client_secret_env is not None or self.client_secret_file is not None
        if not basic and not client:
            raise ValueError(f"no credentials: {_TAKES}")
        if basic and client:
            raise ValueError("choose one kind of credentials: username + password_env, or client_id + client_secret_env, not both")
        stem = "password" if basic else "client_secret"
        if getattr(self, f"{stem}_env") is not None and getattr(self, f"{stem}_file") is not None:
            raise ValueError(f"set {stem}_env or {stem}_file, not both")
        where = f"{stem}_env" if getattr(self, f"{stem}_env") is not None else f"{stem}_file"
        if basic and not self.username:
            raise ValueError(f"{where} needs username: the ServiceNow user's User ID (user_name), e.g. \"sla.bridge\"")
        if basic and self.client_id:
            raise ValueError("client_id goes with client_secret_env (OAuth client credentials): with username + password_env, remove it")
        if client and not self.client_id:
            raise ValueError(f"{where} needs client_id: the OAuth client's Client ID (System OAuth > Application Registry)")
        if client and self.username:
            raise ValueError("username goes with password_env (basic auth): a client-credentials token acts as the OAuth "
                             "application's user, so remove it")
        return self

    @property
    def kind(self) -> str:
        """``password`` (basic auth) or ``client_credentials`` (an OAuth client's id and secret)."""
        return "password" if self.password_env or self.password_file else "client_credentials"

    @property
    def secret_key(self) -> str:
        """The key stem the secret is configured under (``password``, ``client_secret``), for messages."""
        return "password" if self.kind == "password" else "client_secret"

    @property
    def principal(self) -> str | None:
        return self.username if self.kind == "password" else self.client_id

    @property
    def secret_env(self) -> str | None:
        return self.password_env if self.kind == "password" else self.client_secret_env

    @property
    def secret_file(self) -> str | None:
        return self.password_file if self.kind == "password" else self.client_secret_file


class ServiceNowWriteback(WritebackConfig):
    status_field: Annotated[str | None, BeforeValidator(_status_field)] = None

    @field_validator("tag_prefix")
    @classmethod
    def _no_tags(cls, prefix: str) -> str:
        # Runs only when the key is written: ServiceNow records have no tags sla-bridge sets.
        raise ValueError("ServiceNow records have no tags sla-bridge sets (the status goes in status_field, breaches in "
                         "work notes): remove tag_prefix")


class ServiceNowSourceConfig(SourceConfig):
    system: Literal["servicenow"] = "servicenow"
    auth: ServiceNowAuthConfig
    table: Annotated[str, BeforeValidator(_table)] = "incident"
    query: Annotated[str | None, BeforeValidator(_query)] = None
    fields: dict[FieldRole, Annotated[str, BeforeValidator(_field)]] = {}
    writeback: ServiceNowWriteback = ServiceNowWriteback()

    @field_validator("url", mode="before")
    @classmethod
    def _pasted_page(cls, url: Any) -> Any:
        # A URL copied from the browser (/nav_to.do?uri=..., /now/nav/ui/...) would otherwise be
        # refused for its query before its path: name the instance's URL it came from.
        if isinstance(url, str) and not _control(url) and " " not in url:
            parts = urlsplit(url)
            if parts.scheme in ("https", "http") and parts.hostname and (parts.path.strip("/") or parts.query) \
                    and not (parts.username or parts.password):
                raise ValueError(f"{url!r}: give the instance's URL without a path or query "
                                 f"(did you mean \"{_instance(parts.scheme, parts.netloc, parts.hostname)}\"?); "
                                 "sla-bridge adds /api/now/... itself")
        return url

    @field_validator("url")
    @classmethod
    def _instance_url(cls, url: str) -> str:
        host = urlsplit(url).hostname or ""
        if host == _VENDOR_SITE or host.endswith("." + _VENDOR_SITE):
            raise ValueError(f"{url!r} is ServiceNow's own site, not an instance: write the instance's URL, "
                             f"e.g. \"{_instance('https', host, host)}\"")
        if host in _INSTANCE_DOMAINS:
            raise ValueError(f"{url!r} names no instance: write \"https://INSTANCE.{host}\"")
        return url


def _instance(scheme: str, netloc: str, host: str) -> str:
    """The instance URL a pasted URL points at (``acme.servicenow.com`` -> ``acme.service-now.com``)."""
    if host == _VENDOR_SITE or host.endswith("." + _VENDOR_SITE):
        name = host[: -len(_VENDOR_SITE) - 1].split(".")[-1] if host != _VENDOR_SITE else ""
        return f"https://{'INSTANCE' if name in _VENDOR_HOSTS else name}.service-now.com"
    if scheme == "http" and not is_loopback(host):
        scheme = "https"
    return f"{scheme}://{netloc}"

