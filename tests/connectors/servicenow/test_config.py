"""[sources.NAME] for system = "servicenow": each rule refuses what would break a pull or a write, naming the key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bridge.config import describe_errors
from connectors.servicenow.config import ServiceNowSourceConfig

INSTANCE = "https://acme.service-now.com"
BASIC = {"username": "sla.bridge", "password_env": "SN_PASSWORD"}
CLIENT = {"client_id": "3f9b0c2d1e6a4b7c8d9e0f1a2b3c4d5e", "client_secret_env": "SN_CLIENT_SECRET"}


def config(**keys: Any) -> ServiceNowSourceConfig:
    return ServiceNowSourceConfig(**{"url": INSTANCE, "auth": BASIC, **keys})


def problems(**keys: Any) -> list[str]:
    """The lines `check` prints for these keys, as the loader words them."""
    with pytest.raises(ValidationError) as caught:
        config(**keys)
    return describe_errors(caught.value, ("sources", "sn"))


def problem(**keys: Any) -> str:
    [line] = problems(**keys)
    return line


# -- url --------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [INSTANCE, INSTANCE + "/", "https://acme.servicenowservices.com", "http://127.0.0.1:8766",
                                 "https://support.acme.example"])  # a custom URL in front of an instance
def test_an_instance_url_is_taken(url: Any) -> None:
    assert config(url=url).url == url.rstrip("/")


@pytest.mark.parametrize(("url", "meant"), [
    (INSTANCE + "/nav_to.do?uri=incident.do?sys_id=9c573169c611228700193229fff72400", INSTANCE),  # pasted from the browser
    (INSTANCE + "/now/nav/ui/classic/params/target/incident_list.do", INSTANCE),
    (INSTANCE + "/api/now/table/incident", INSTANCE),
    ("http://acme.service-now.com/incident_list.do", INSTANCE),  # and with the scheme it must have
    ("http://127.0.0.1:8766/api/now/table/incident", "http://127.0.0.1:8766"),
])
def test_a_url_with_a_path_is_refused_with_the_instance_url(url: Any, meant: Any) -> None:
    """The connector appends /api/now/...: a pasted page URL would 404 on every request."""
    assert problem(url=url) == (f"sources.sn.url: {url!r}: give the instance's URL without a path or query "
                                f"(did you mean \"{meant}\"?); sla-bridge adds /api/now/... itself")


@pytest.mark.parametrize(("url", "meant"), [
    ("https://acme.servicenow.com", "https://acme.service-now.com"),  # the docs' example host, not an instance
    ("https://www.servicenow.com", "https://INSTANCE.service-now.com"),
])
def test_servicenow_s_own_site_is_refused(url: Any, meant: Any) -> None:
    assert problem(url=url) == (f"sources.sn.url: {url!r} is ServiceNow's own site, not an instance: write the instance's URL, "
                                f"e.g. \"{meant}\"")


def test_a_url_without_an_instance_is_refused() -> None:
    assert problem(url="https://service-now.com") == (
        "sources.sn.url: 'https://service-now.com' names no instance: write \"https://INSTANCE.service-now.com\"")


def test_plain_http_is_refused_off_loopback() -> None:
    assert "sources.sn.url: 'http://acme.service-now.com' uses http://" in problem(url="http://acme.service-now.com")


# -- auth -------------------------------------------------------------------------------------

def test_a_user_name_and_password_is_basic_auth() -> None:
    auth = config().auth
    assert (auth.kind, auth.principal, auth.secret_env, auth.secret_file, auth.secret_key) == (
        "password", "sla.bridge", "SN_PASSWORD", None, "password")


def test_a_password_may_be_read_from_a_file() -> None:
    auth = config(auth={"username": "sla.bridge", "password_file": "/run/secrets/sn"}).auth
    assert (auth.kind, auth.secret_env, auth.secret_file) == ("password", None, "/run/secrets/sn")


def test_an_oauth_client_s_id_and_secret_are_client_credentials() -> None:
    auth = config(auth=CLIENT).auth
    assert (auth.kind, auth.principal, auth.secret_env, auth.secret_file, auth.secret_key) == (
        "client_credentials", CLIENT["client_id"], "SN_CLIENT_SECRET", None, "client_secret")
    assert config(auth={"client_id": "abc", "client_secret_file": "secret.txt"}).auth.secret_file == "secret.txt"


@pytest.mark.parametrize(("auth", "line"), [
    ({"username": "sla.bridge"}, "sources.sn.auth: no credentials: ServiceNow takes username + password_env (basic auth), or an "
                                 "OAuth client's client_id + client_secret_env (client credentials); each *_env may be a *_file instead"),
    ({**BASIC, **CLIENT}, "sources.sn.auth: choose one kind of credentials: username + password_env, or client_id + "
                          "client_secret_env, not both"),
    ({**BASIC, "password_file": "/run/secrets/sn"}, "sources.sn.auth: set password_env or password_file, not both"),
    ({**CLIENT, "client_secret_file": "/run/secrets/sn"}, "sources.sn.auth: set client_secret_env or client_secret_file, not both"),
    ({"password_file": "/run/secrets/sn"}, "sources.sn.auth: password_file needs username: the ServiceNow user's User ID "
                                           "(user_name), e.g. \"sla.bridge\""),
    ({"client_secret_env": "S"}, "sources.sn.auth: client_secret_env needs client_id: the OAuth client's Client ID "
                                 "(System OAuth > Application Registry)"),
    ({**BASIC, "client_id": "abc"}, "sources.sn.auth: client_id goes with client_secret_env (OAuth client credentials): "
                                    "with username + password_env, remove it"),
    ({**CLIENT, "username": "sla.bridge"}, "sources.sn.auth: username goes with password_env (basic auth): a client-credentials "
                                           "token acts as the OAuth application's user, so remove it"),
])
def test_credentials_must_be_exactly_one_complete_kind(auth: Any, line: Any) -> None:
    assert problem(auth=auth) == line


def test_an_inline_client_secret_is_refused_without_showing_it() -> None:
    line = problem(auth={"client_id": "abc", "client_secret": "hunter2"})
    assert line == ("sources.sn.auth.client_secret: a secret may not be written in the config file; name where it is instead: "
                    "client_secret_env = \"ENV_VAR_NAME\" or client_secret_file = \"/path/to/file\"")


def test_an_inline_password_is_refused_as_the_base_refuses_it() -> None:
    assert problems(auth={"username": "sla.bridge", "password": "hunter2"})[0].startswith(
        "sources.sn.auth.password: a secret may not be written in the config file")


@pytest.mark.parametrize("key", ["token_env", "token_file"])
def test_an_api_token_is_refused_saying_what_servicenow_takes(key: Any) -> None:
    line = problem(auth={"username": "sla.bridge", key: "SN_TOKEN"})
    assert line.startswith(f"sources.sn.auth.{key}: ServiceNow's API keys (x-sn-apikey) are not supported: ServiceNow takes "
                           "username + password_env (basic auth), or an OAuth client's client_id + client_secret_env")


@pytest.mark.parametrize("key", ["oauth_token_env", "oauth_token_file"])
def test_a_ready_made_access_token_is_refused_for_the_client_credentials(key: Any) -> None:
    """An access token lives 30 minutes: a run an hour later would fail at its first request."""
    assert problem(auth={key: "SN_OAUTH"}) == (
        f"sources.sn.auth.{key}: a ServiceNow access token expires after 30 minutes, so sla-bridge fetches its own: set "
        "client_id + client_secret_env (OAuth client credentials) instead, or username + password_env")


@pytest.mark.parametrize("key", ["token", "api_token", "access_token"])
def test_an_inline_token_is_refused_saying_what_servicenow_takes(key: Any) -> None:
    line = problems(auth={**BASIC, key: "abc123"})[0]
    assert line.startswith(f"sources.sn.auth.{key}: a secret may not be written in the config file, and ServiceNow takes no token")
    assert "abc123" not in line


def test_an_email_is_refused_for_the_user_name() -> None:
    assert problem(auth={"email": "sla.bridge@acme.example", "password_env": "P", "username": "x"}) == (
        "sources.sn.auth.email: ServiceNow knows the account by its user name (User ID), even when it looks like an email: "
        "write username = \"...\" instead of email")


def test_a_client_id_with_a_line_break_is_refused() -> None:
    assert problem(auth={"client_id": "abc\r\nX-Evil: 1", "client_secret_env": "S"}).startswith(
        "sources.sn.auth.client_id: must be a non-empty name without control characters")


# -- table ------------------------------------------------------------------------------------

def test_the_table_is_incident_by_default() -> None:
    assert config().table == "incident"


@pytest.mark.parametrize("table", ["incident", "sn_customerservice_case", "sc_req_item", "u_facilities_request",
                                   "x_acme_hr_case", "a" * 80])
def test_a_table_name_is_taken(table: Any) -> None:
    assert config(table=table).table == table


@pytest.mark.parametrize(("table", "meant"), [
    ("Incident", "incident"),
    ("incident.do", "incident"),
    ("incident_list.do", "incident"),
    ("/api/now/table/sc_req_item", "sc_req_item"),
    ("incident,problem", None),  # one table a source
    ("1ncident", None),
    ("a" * 81, None),
])
def test_a_text_that_is_not_a_table_name_is_refused(table: Any, meant: Any) -> None:
    line = problem(table=table)
    assert line.startswith(f"sources.sn.table: {table!r} is not a table name")
    assert (f'(did you mean "{meant}"?)' in line) == (meant is not None)
    assert '"incident", "sn_customerservice_case" or "sc_req_item"' in line


# -- query ------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "category=network",
    "assignment_group=8a5055c9c61122780043563ef53438e3^priorityIN1,2",
    "category=network^ORcategory=hardware",          # ^OR stays inside the group
    "opened_at>=2026-01-01 00:00:00",                  # a plain UTC literal
    "short_descriptionLIKEorder by",                   # words in a value are a value
    "company.name=Acme",                               # a dot-walk
])
def test_an_encoded_query_is_taken(query: Any) -> None:
    assert config(query=query).query == query


def test_no_query_is_the_default() -> None:
    assert config().query is None


@pytest.mark.parametrize("query", ["active=true^ORDERBYnumber", "ORDERBYDESCsys_created_on", "active=true^ORDERBYDESCpriority"])
def test_a_query_with_an_orderby_is_refused(query: Any) -> None:
    """The keyset paging needs sys_updated_on, sys_id as the first order: an ORDERBY before them breaks it."""
    assert problem(query=query).startswith(f"sources.sn.query: {query!r} has an ORDERBY: remove it; sla-bridge orders the pull itself")


def test_a_query_with_a_second_group_is_refused() -> None:
    """`A^NQB^sys_updated_on>=W` would pull group A whole, every run."""
    line = problem(query="priority=1^NQcategory=network")
    assert line.startswith("sources.sn.query: 'priority=1^NQcategory=network' has ^NQ (a second query)")
    assert "write the alternatives with ^OR instead" in line


@pytest.mark.parametrize("query", ["opened_at>=javascript:gs.dateGenerate('2026-01-01','00:00:00')",
                                   "sys_created_on>JavaScript:gs.daysAgoStart(30)"])
def test_a_query_that_runs_a_script_is_refused_for_its_time_zone(query: Any) -> None:
    line = problem(query=query)
    assert line.startswith(f"sources.sn.query: {query!r} runs a script (javascript:)")
    assert "read dates in the API user's time zone" in line and "plain UTC date-times" in line


@pytest.mark.parametrize("query", ["^active=true", "active=true^", "^"])
def test_a_query_with_an_outer_caret_is_refused(query: Any) -> None:
    assert problem(query=query).startswith(f"sources.sn.query: {query!r} starts or ends with '^'")


def test_the_end_of_query_mark_of_a_list_url_is_refused() -> None:
    assert problem(query="category=network^EQ").startswith("sources.sn.query: 'category=network^EQ' has ^EQ, the end-of-query mark")


@pytest.mark.parametrize("query", ["active=true", "category=network^state!=7", "stateIN1,2,3", "category=x^ORhold_reasonISEMPTY"])
def test_a_filter_on_what_working_a_record_changes_is_refused(query: Any) -> None:
    """A record that leaves the filter (closed, cancelled) would never be pulled again."""
    assert "which a record changes by being worked on" in problem(query=query)


@pytest.mark.parametrize("query", ["statement=x", "u_active_flag=true", "short_descriptionLIKEactive=true"])
def test_a_filter_that_only_looks_like_one_on_state_is_taken(query: Any) -> None:
    assert config(query=query).query == query


@pytest.mark.parametrize("query", ["active=true\n^priority=1", "active=true\t", "active=\x00true"])
def test_a_query_with_a_control_character_is_refused(query: Any) -> None:
    assert problem(query=query).startswith("sources.sn.query: holds a control character")


@pytest.mark.parametrize("query", ["", "   "])
def test_a_blank_query_is_refused(query: Any) -> None:
    assert problem(query=query).startswith("sources.sn.query: is empty")


def test_a_query_with_outer_spaces_is_refused() -> None:
    assert problem(query=" active=true").startswith("sources.sn.query: ' active=true' starts or ends with a space")


# -- fields -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["company", "u_support_tier", "business_service", "company.name", "assignment_group.name",
                                  "x_acme_tier"])
def test_a_column_or_one_dot_walk_is_taken(name: Any) -> None:
    assert config(fields={"customer": name}).fields == {"customer": name}


@pytest.mark.parametrize(("name", "meant"), [
    ("Company", "company"),
    ("Support tier", "u_support_tier"),   # a column's label: the instance names it u_support_tier
    ("Company.Name", "company.name"),
    ("caller_id.company.name", None),     # a chain
    ("", None),
])
def test_a_text_that_is_not_a_column_is_refused(name: Any, meant: Any) -> None:
    line = problem(fields={"service": name})
    assert line.startswith(f"sources.sn.fields.service: {name!r} is not a column of the table")
    assert (f'(did you mean "{meant}"?)' in line) == (meant is not None)


def test_a_chain_of_dot_walks_is_refused_saying_one_at_most() -> None:
    assert "sla-bridge follows one reference at most" in problem(fields={"customer": "caller_id.company.name"})


def test_a_field_role_that_does_not_exist_is_refused() -> None:
    assert problem(fields={"team": "assignment_group"}).startswith("sources.sn.fields.team: unknown key 'team' is not allowed")


# -- writeback --------------------------------------------------------------------------------

@pytest.mark.parametrize("column", ["u_sla_status", "x_acme_sla_status", "u_a"])
def test_the_status_field_is_a_column(column: Any) -> None:
    assert config(writeback={"status_field": column}).writeback.status_field == column


@pytest.mark.parametrize(("column", "says"), [
    ("comments", "'comments' is the customer-visible journal (Additional comments)"),
    ("work_notes", "'work_notes' is the internal journal sla-bridge posts its notes into"),
    ("comments_and_work_notes", "'comments_and_work_notes' is a journal, not a column"),
    ("state", "'state' is a field sla-bridge reads to run the clocks"),
    ("hold_reason", "'hold_reason' is a field sla-bridge reads to run the clocks"),
    ("sys_tags", "'sys_tags' is a system field: the instance sets sys_ fields itself"),
    ("u_sla.status", "'u_sla.status' is a dot-walk into another record"),
    ("SLA status", "'SLA status' is not a column name (did you mean \"u_sla_status\"?)"),
    ("U_SLA_Status", "'U_SLA_Status' is not a column name (did you mean \"u_sla_status\"?)"),
])
def test_a_status_field_sla_bridge_must_not_or_cannot_write_is_refused(column: Any, says: Any) -> None:
    line = problem(writeback={"status_field": column})
    assert line.startswith(f"sources.sn.writeback.status_field: {says}")
    assert line.endswith('write the name of a string column of the table, e.g. "u_sla_status" (as `sla-bridge fields SOURCE` lists it)')


def test_a_tag_prefix_is_refused_for_records_have_no_tags() -> None:
    assert problem(writeback={"tag_prefix": "sla_"}) == (
        "sources.sn.writeback.tag_prefix: ServiceNow records have no tags sla-bridge sets (the status goes in status_field, "
        "breaches in work notes): remove tag_prefix")


def test_the_writeback_keys_it_shares_keep_their_defaults() -> None:
    writeback = config().writeback
    assert (writeback.enabled, writeback.status_field, writeback.tags, writeback.notes) == (False, None, None, None)


def test_the_system_is_servicenow() -> None:
    assert config().system == "servicenow"
    assert problem(system="jira").startswith("sources.sn.system: value 'jira' is not allowed")
