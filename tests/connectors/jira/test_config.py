"""[sources.NAME] for system = "jira": each rule refuses what would break a pull or a write, naming the key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bridge.config import describe_errors
from connectors.jira.config import BUILT_IN_FIELDS, JSM_FIELDS, JiraSourceConfig

SITE = "https://acme.atlassian.net"
GATEWAY = "https://api.atlassian.com/ex/jira/1324a887-45db-1bf4-1e99-ef0ff456d421"
BASIC = {"email": "sla-bot@acme.example", "token_env": "JIRA_TOKEN"}


def config(**keys: Any) -> JiraSourceConfig:
    return JiraSourceConfig(**{"url": SITE, "auth": BASIC, "projects": ["SUP"], **keys})


def problems(**keys: Any) -> list[str]:
    """The lines `check` prints for these keys, as the loader words them."""
    with pytest.raises(ValidationError) as caught:
        config(**keys)
    return describe_errors(caught.value, ("sources", "jira"))


def problem(**keys: Any) -> str:
    [line] = problems(**keys)
    return line


# -- url --------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [SITE, SITE + "/", "http://127.0.0.1:8765", GATEWAY])
def test_a_site_url_is_taken(url):
    assert config(url=url).url == url.rstrip("/")


@pytest.mark.parametrize("url", [SITE + "/jira/servicedesk/projects/SUP/queues", SITE + "/rest/api/3",
                                 "https://api.atlassian.com/ex/jira/not-a-cloud-id"])
def test_a_url_with_a_path_is_refused(url):
    """The connector appends /rest/...: a pasted queue URL would 404 on every request."""
    assert problem(url=url).startswith(f"sources.jira.url: {url!r}: give the site's URL without a path, e.g. \"https://SITE.atlassian.net\"")


def test_plain_http_is_refused_off_loopback():
    assert "sources.jira.url: 'http://acme.atlassian.net' uses http://" in problem(url="http://acme.atlassian.net")


# -- auth -------------------------------------------------------------------------------------

def test_an_api_token_with_its_email_is_basic_auth():
    auth = config().auth
    assert (auth.kind, auth.principal, auth.secret_env) == ("token", "sla-bot@acme.example", "JIRA_TOKEN")


def test_an_api_token_may_be_read_from_a_file():
    assert config(auth={"email": "sla-bot@acme.example", "token_file": "/run/secrets/jira"}).auth.secret_file == "/run/secrets/jira"


def test_an_oauth_token_is_taken_through_the_gateway_and_on_loopback():
    assert config(url=GATEWAY, auth={"oauth_token_env": "JIRA_OAUTH"}).auth.kind == "oauth_token"
    assert config(url="http://127.0.0.1:8765", auth={"oauth_token_file": "/run/secrets/oauth"}).auth.kind == "oauth_token"


def test_an_oauth_token_at_the_site_is_refused():
    """SITE.atlassian.net answers 401 to a 3LO access token: every run would fail at the first request."""
    line = problem(auth={"oauth_token_env": "JIRA_OAUTH"})
    assert line.startswith("sources.jira.auth: an OAuth access token works only through Atlassian's gateway")
    assert "https://api.atlassian.com/ex/jira/CLOUD_ID" in line


def test_a_token_without_its_email_is_refused():
    assert problem(auth={"token_env": "JIRA_TOKEN"}) == (
        "sources.jira.auth: token_env needs email: the API token is used together with the account's email address")


def test_an_email_that_is_not_one_is_refused():
    assert problem(auth={"email": "sla-bot", "token_env": "JIRA_TOKEN"}).startswith(
        "sources.jira.auth.email: 'sla-bot' is not an email address")


@pytest.mark.parametrize(("auth", "key", "says"), [
    ({"username": "sla-bot", "password_env": "JIRA_PASSWORD"}, "password_env", "does not take account passwords"),
    ({"username": "sla-bot", "password_file": "/run/secrets/pw"}, "password_file", "does not take account passwords"),
    ({"username": "sla-bot", "token_env": "JIRA_TOKEN", "email": "sla-bot@acme.example"}, "username", "write email"),
])
def test_a_password_or_a_username_is_refused(auth, key, says):
    """Jira Cloud dropped password basic auth; a username would be ignored beside the email."""
    assert any(line.startswith(f"sources.jira.auth.{key}: ") and says in line for line in problems(auth=auth))


def test_an_inline_token_is_refused():
    assert "sources.jira.auth.token: a secret may not be written in the config file" in problems(
        auth={"email": "sla-bot@acme.example", "token": "ATATT3x"})[0]


# -- projects ---------------------------------------------------------------------------------

@pytest.mark.parametrize("keys", [["SUP"], ["SUP", "IT", "HR_2", "A1234567_9"]])
def test_project_keys_are_taken(keys):
    assert config(projects=keys).projects == keys


def test_projects_are_required():
    with pytest.raises(ValidationError) as caught:
        JiraSourceConfig(url=SITE, auth=BASIC)  # type: ignore[call-arg]
    assert describe_errors(caught.value, ("sources", "jira")) == ["sources.jira.projects: required key is missing"]


def test_an_empty_project_list_is_refused():
    assert problem(projects=[]).startswith("sources.jira.projects: lists no project: name the service projects to pull")


def test_one_key_written_as_text_is_refused_with_the_list_to_write():
    assert problem(projects="SUP") == (
        "sources.jira.projects: 'SUP' is one text, not a list: write projects = [\"SUP\"] (each key in quotes)")


@pytest.mark.parametrize(("key", "meant"), [
    ("sup", "SUP"),        # JQL would take it, but issue keys come back upper-case
    (" SUP", "SUP"),
    ("SUP-123", "SUP"),    # an issue key
    ("S", None),           # too short
    ("SUPPORTDESK1", None),  # too long
    ("1SUP", None),
    ("SUP DESK", None),
    ("SUP)", None),        # would end `project in (...)` early
])
def test_a_text_that_is_not_a_project_key_is_refused(key, meant):
    line = problem(projects=["IT", key])
    assert line.startswith(f"sources.jira.projects[1]: {key!r} is not a Jira project key")
    assert (f'(did you mean "{meant}"?)' in line) == (meant is not None)


def test_a_project_listed_twice_is_refused():
    assert problem(projects=["SUP", "IT", "SUP"]) == "sources.jira.projects: 'SUP' is listed twice: list each project once"


# -- jql --------------------------------------------------------------------------------------

@pytest.mark.parametrize("jql", [
    'type = "Service Request"',
    "labels not in (internal) AND (priority = High OR priority = Highest)",
    'summary ~ "order by mistake"',          # ORDER BY inside a quoted text is a text
    "summary ~ 'it\\'s (broken'",             # an escaped quote and a bracket inside quotes
    'status != Closed\n  AND "Customer Request Type" = "Get IT help"',  # a multi-line TOML string
])
def test_a_jql_filter_is_taken(jql):
    assert config(jql=jql).jql == jql


def test_no_jql_is_the_default():
    assert config().jql is None


@pytest.mark.parametrize("jql", ["status = Open ORDER BY created DESC", "order   by key", "status = Open order\nby rank"])
def test_a_jql_with_an_order_by_is_refused(jql):
    """The connector orders by updated, then key, for its watermark; a second ORDER BY is a 400."""
    line = problem(jql=jql)
    assert line.startswith(f"sources.jira.jql: {jql!r} has an ORDER BY: remove it")


@pytest.mark.parametrize("jql", ["status = Open\x00", "status = Open\x1b[2J", "status = \x7fOpen"])
def test_a_jql_with_a_control_character_is_refused(jql):
    assert problem(jql=jql).startswith("sources.jira.jql: holds a control character")


@pytest.mark.parametrize(("jql", "says"), [
    ("status = Open) OR (project is not EMPTY", "unbalanced parentheses"),  # would widen the pull beyond the projects
    ("(status = Open", "unbalanced parentheses"),
    ('summary ~ "unclosed', "a quote that is never closed"),
])
def test_a_jql_that_would_not_stay_one_term_is_refused(jql, says):
    assert problem(jql=jql).startswith(f"sources.jira.jql: {jql!r} has {says}")


@pytest.mark.parametrize("jql", ["", "   "])
def test_a_blank_jql_is_refused(jql):
    assert problem(jql=jql).startswith("sources.jira.jql: is empty")


# -- fields -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [*BUILT_IN_FIELDS, *JSM_FIELDS, "customfield_10010", "customfield_1",
                                  "name:Support tier", "name:Niveau de service"])
def test_a_field_sla_bridge_reads_is_taken(name):
    assert config(fields={"service": name}).fields == {"service": name}


def test_the_jsm_fields_are_found_by_their_schema_not_their_id_or_name():
    assert JSM_FIELDS == {"organizations": "com.atlassian.servicedesk:sd-customer-organizations",
                          "request_type": "com.atlassian.servicedesk:vp-origin"}


@pytest.mark.parametrize(("name", "meant"), [
    ("Organizations", "organizations"),   # the field's display name
    ("organisation", "organizations"),
    ("organization", "organizations"),    # Zendesk's name
    ("Request Type", "request_type"),
    ("customer request type", "request_type"),
    ("issue_type", "issuetype"),
    ("type", "issuetype"),
    ("component", "components"),
    ("label", "labels"),
    ("requester", "reporter"),
    ("prority", "priority"),
    ("custom_field:10010", "customfield_10010"),  # Zendesk's form
    ("cf[10010]", "customfield_10010"),           # the JQL form
    ("customfield_010010", "customfield_10010"),
    ("10010", "customfield_10010"),
])
def test_a_field_name_jira_issues_lack_is_refused_with_a_suggestion(name, meant):
    line = problem(fields={"customer": name})
    assert line.startswith(f"sources.jira.fields.customer: {name!r} is not a field sla-bridge reads from Jira issues "
                           f'(did you mean "{meant}"?). Use one of priority, issuetype')
    assert '"customfield_10010"' in line and '"name:FIELD NAME"' in line


def test_a_field_name_like_none_is_refused_with_the_names_there_are():
    line = problem(fields={"group": "colour"})
    assert "did you mean" not in line
    assert line.startswith("sources.jira.fields.group: 'colour' is not a field sla-bridge reads from Jira issues. "
                           "Use one of priority, issuetype, status, assignee, reporter, components, labels, organizations, request_type")


@pytest.mark.parametrize("name", ["customfield_", "customfield_abc", "customfield_0", "custom_field:"])
def test_a_custom_field_id_without_a_number_is_refused(name):
    assert problem(fields={"type": name}).startswith(f"sources.jira.fields.type: {name!r} is not a custom field id: write \"customfield_\"")


@pytest.mark.parametrize("name", ["name:", "name:  ", "name: Support tier", "name:Support\ttier", "name:" + "x" * 256])
def test_a_field_by_name_that_names_nothing_is_refused(name):
    assert problem(fields={"service": name}).startswith(f"sources.jira.fields.service: {name!r} names no field")


def test_a_field_role_that_does_not_exist_is_refused():
    line = problem(fields={"team": "components"})
    assert line.startswith("sources.jira.fields.team: unknown key 'team' is not allowed")


# -- writeback --------------------------------------------------------------------------------

def test_the_status_field_is_a_custom_field_id():
    assert config(writeback={"status_field": "customfield_10077"}).writeback.status_field == "customfield_10077"


@pytest.mark.parametrize(("value", "meant"), [
    ("custom_field:10077", "customfield_10077"),
    ("cf[10077]", "customfield_10077"),
    ("SLA status", None),
    ("name:SLA status", None),   # write-back needs the id: it is journaled by field
    ("customfield_", None),
])
def test_a_status_field_that_is_not_a_custom_field_id_is_refused(value, meant):
    line = problem(writeback={"status_field": value})
    assert line.startswith(f"sources.jira.writeback.status_field: {value!r} is not a custom field id")
    assert (f'(did you mean "{meant}"?)' in line) == (meant is not None)
    assert "customfield_NNNNN" in line


@pytest.mark.parametrize("prefix", ["sla_", "", "sla-bridge-", "x" * 247])
def test_a_label_prefix_is_taken(prefix):
    assert config(writeback={"tag_prefix": prefix}).writeback.tag_prefix == prefix


@pytest.mark.parametrize("prefix", ["sla ", "sla\t", "SLA_", "sla:"])
def test_a_label_prefix_jira_cannot_hold_is_refused(prefix):
    """Labels are one word: Jira refuses a label with a space, so every tag write would fail."""
    assert problem(writeback={"tag_prefix": prefix}).startswith(
        f"sources.jira.writeback.tag_prefix: {prefix!r} cannot start a Jira label: labels are one word (no spaces)")


def test_a_label_prefix_too_long_for_a_label_is_refused():
    assert problem(writeback={"tag_prefix": "x" * 248}) == (
        "sources.jira.writeback.tag_prefix: is 248 characters long: a Jira label has at most 255, so keep the prefix to 247")


def test_the_writeback_keys_it_shares_keep_their_defaults():
    writeback = config().writeback
    assert (writeback.enabled, writeback.status_field, writeback.tags, writeback.tag_prefix, writeback.notes) == (
        False, None, None, "sla_", None)


def test_the_system_is_jira():
    assert config().system == "jira"
    assert problem(system="zendesk").startswith("sources.jira.system: value 'zendesk' is not allowed")
