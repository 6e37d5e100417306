"""A local emulator of the Jira Cloud platform and Jira Service Management paths sla-bridge uses.

Faithful where the connector could tell the difference (../shared/reference/jira-api.md,
sections 2 to 6, 9 and 11; the platform and JSM OpenAPI documents in ../shared/vendor-specs):

- Enhanced search ``GET|POST /rest/api/3/search/jql``: opaque ``nextPageToken`` tied to its
  query (and expiring after 7 days), the last page exactly ``{"issues": [...], "isLast": true}``,
  ``fields`` defaulting to ``id`` alone and only the fields asked for returned, ``maxResults``
  (default 50) capped at 100 once fields or the changelog are asked for (5000 for ids alone),
  bounded JQL required (400 for ``order by key desc`` alone), at most 7 ORDER BY fields,
  ``expand`` a comma-delimited string (``changelog`` and ``names``), ``reconcileIssues``.
- The JQL subset a connector emits, parsed strictly: ``project``, ``labels``, ``status``,
  ``priority``, ``key``/``id``/``issue``/``issuekey``, ``updated``/``created``/``resolved``; ``=``,
  ``!=``, ``in``, ``not in``, ``>=``, ``<=``, ``>``, ``<``; ``AND``, ``OR``, ``NOT`` and parentheses;
  ``ORDER BY`` with ASC/DESC. Date literals: unquoted epoch milliseconds, ``"yyyy/MM/dd HH:mm"``,
  ``"yyyy-MM-dd HH:mm"``, date-only, relative (``-5m``, ``"-2h"``, ``"-1d"``, ``"4w 2d"``); those
  without a zone are read in the API user's profile zone (``user_zone``), never UTC; every literal
  is floored to the minute. Anything else is a 400 "Error in the JQL Query: ...".
- ``/rest/api/{2,3,latest}/search`` answers 410 with the CHANGE-2046 body.
- Timestamps ``yyyy-MM-dd'T'HH:mm:ss.SSS+HHMM`` in the site's zone (``site_zone``), so offsets
  change with DST inside one response.
- ``expand=changelog`` inline: the newest ``inline_changelog`` histories, newest first, with the
  true ``total``; ``fields.comment``: the oldest ``inline_comments`` comments with the true total.
  A few percent of issues have a long history (label, assignee and priority churn, status
  bounces), so the inline changelog is truncated for them.
- ``GET /rest/api/3/issue/{idOrKey}/changelog``: oldest first, ``startAt``/``maxResults`` (cap 100),
  ``self`` naming the key even when asked by id, no ``nextPage`` on the last page.
  ``POST /rest/api/3/changelog/bulkfetch``: validated as ``BulkChangelogRequestBean`` (1..1000
  ids, at most 10 unique ``fieldIds``, ``maxResults`` 1..10000, nothing else), histories sorted by
  date then issue id, ``fieldIds`` filtering histories and their items, token paging, ``created``
  in the string form.
- Comments: platform comments with ADF bodies and ``jsdPublic``; ``sd.public.comment``
  ``{"internal": true}`` (shown with ``expand=properties``) makes one internal; a platform comment
  posted without it is **public** (recorded in ``api_comments``, so a test can prove a connector
  never makes one); JSM request comments with string bodies, ``public`` required, ``DateDTO``
  times, and 404 ``sd.customerview.error.vpOriginMissing`` for issues without a request type
  (about 5%).
- ``PUT /rest/api/3/issue/{idOrKey}``: ``fields`` and ``update`` (labels ``add``/``remove``/
  ``set`` never touching other labels), a field in both is a 400, labels with spaces are a 400, a
  field not on the edit screen (``edit_screen_lacks``) is a 400 naming it, 204; an edit moves
  ``updated`` and appends a history. ``notifyUsers=false`` is honoured for a project admin and
  silently ignored otherwise; the notifications that would have been e-mailed are counted.
- Accounts: portal customers (``accountType: customer``, ``qm:`` ids); a few licensed requesters
  (``atlassian`` without ``SERVICEDESK_AGENT``: their public comments are customer replies);
  agents with ``SERVICEDESK_AGENT`` on both projects (``downgrade`` takes it away); the API user;
  the "Automation for Jira" app user, which moves an issue back to "Waiting for support" when
  the customer comments (JSM's default rule).
  ``GET /rest/api/3/user/permission/search`` scans the users in ``[startAt, startAt +
  maxResults)``, at most a thousand, and returns those in range that match (so pages come back
  short); ``accountId`` filters exactly; 403 unless the API user administers the project.
- JSM fields are custom fields with ids randomised per instance (``field_seed``): Request Type,
  Organizations (``[{id, name, _links}]``), the SLA fields (names localised by ``language``) with
  ``SlaInformationDTO`` values and their "nothing" shapes (null for an issue without a request
  type; ``completedCycles: []`` and no ``ongoingCycle`` where no goal applies; the error object of
  a project that is no service project, through ``outside_service_desk``), "Service" (a select),
  "SLA status" (a single-line text field, the write-back target) and "Assignment group" (a
  select with the story's groups as options: its value ``{self, value, id}``, and each handoff
  of the story a changelog item of the field, ``from``/``to`` the option ids and
  ``fromString``/``toString`` their values, like any select change; setting it at creation writes
  no history, as in Jira).
- Errors in the platform shape ``{"errorMessages", "errors"}`` and the JSM shape
  ``{"errorMessage", "i18nErrorMessage"}``, each where it applies; 401 for bad credentials. (The
  third shape, bulk operations' ``{"errors": [{"message"}]}``, belongs to routes not emulated.)
- Hooks for tests: ``customer_replies``, ``agent_replies``, ``agent_edits``, ``noted``,
  ``long_history``, ``malform``, ``unknown_value``, ``downgrade``, ``edit_screen_lacks``,
  ``outside_service_desk``, ``hand_off``; ``public_comments_by`` and ``api_comments`` prove what was made public.
- Rate limits: a per-second burst window per endpoint and method (429, ``Retry-After``,
  ``X-RateLimit-Limit``/``-Remaining``/``-Reset``, ``RateLimit-Reason: jira-burst-based``) and a
  per-issue write limit (``jira-per-issue-on-write``). Search results may lag writes by
  ``search_lag`` seconds (eventual consistency) unless ``reconcileIssues`` names the issue.

Assumptions (behaviour the reference and the documents do not pin down, chosen here and marked
"Assumption" where implemented): the error messages' exact wording (except the CHANGE-2046,
vpOriginMissing, "not on the appropriate screen", "Unbounded JQL" and rate-limit texts, which
are quoted from real answers); an issue of a search that asks for no fields carries ``id``, ``key``
and ``self`` (no ``fields``); search tokens resume *after* the last issue's sort key (issues
changed mid-walk move, none is skipped), ties are broken by id, and a search without ORDER BY is
ordered by id; epoch-millisecond literals are floored to the minute like the others; which
comments the inline ``fields.comment`` keeps (the oldest); bulkfetch groups a page's histories
by issue in the order each issue first appears and skips unknown issues; labels are kept sorted;
an edit that changes nothing writes no history; SLA goals per priority, a 24/7 calendar, the
resolution SLA pausing in "Waiting for customer"; the ``friendly`` texts; the public comment's
empty ``properties``; ``/user/permission/search`` accepting neither ``query`` nor ``accountId``
(as its description allows, against the 400 its response list names).

Serving, the request log and fault injection come from :mod:`connectors.kit.server`; the
issues' story from :mod:`connectors.kit.story`, told in Jira's words. Seeded and
deterministic: the same ``seed``, ``tickets``, ``anchor`` and options give the same site.
"""

from __future__ import annotations

import base64
import bisect
import copy
import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import total_ordering
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx

from bridge.framework.sandbox import WritebackSummary
from connectors.kit.server import Query, SandboxServer, SlidingWindow, json_response
from connectors.kit.story import AGENTS, CUSTOMERS, GROUPS, REQUESTERS, Step, TicketStory, tell

__all__ = ["PROJECTS", "STATUSES", "JiraSandbox", "JqlError"]

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# key -> (project id, name, service desk id). Initech's requests go to OPS, the others' to SUP.
PROJECTS = {"SUP": ("10000", "Support", "1"), "OPS": ("10001", "Operations", "2")}
OPS_CUSTOMER = 2
# Status id -> (name, category key), from JSM's IT service workflow; "Escalated to vendor" is a
# status a site added (unknown_value), which no default maps.
STATUSES = {
    "10001": ("Waiting for support", "new"),
    "3": ("In Progress", "indeterminate"),
    "10002": ("Waiting for customer", "indeterminate"),
    "10003": ("Resolved", "done"),
    "6": ("Closed", "done"),
    "10004": ("Canceled", "done"),
    "10005": ("Escalated to vendor", "indeterminate"),
}
WAITING_SUPPORT, IN_PROGRESS, WAITING_CUSTOMER, RESOLVED = "10001", "3", "10002", "10003"
ESCALATED = "10005"
CATEGORIES = {"new": (2, "To Do", "blue-gray"), "indeterminate": (4, "In Progress", "yellow"), "done": (3, "Done", "green")}
PRIORITIES = {"1": "Highest", "2": "High", "3": "Medium", "4": "Low", "5": "Lowest"}
STORY_PRIORITIES = {"p1": "1", "p2": "2", "p3": "3", "p4": "4"}
GROUP_OPTIONS = tuple(str(10200 + index) for index in range(len(GROUPS)))  # the "Assignment group" option id of each story group
ISSUE_TYPES = {"incident": ("10004", "[System] Incident"), "question": ("10003", "[System] Service request"),
               "problem": ("10005", "[System] Problem"), "task": ("10006", "Task")}
REQUEST_TYPES = {"incident": ("2", "Report a system problem"), "question": ("1", "Get IT help"),
                 "problem": ("3", "Investigate a problem"), "task": ("4", "Request a change")}
SLA_NAMES = {"en": ("Time to first response", "Time to resolution"),
             "ko": ("첫 번째 응답 시간", "해결 시간"),
             "de": ("Zeit bis zur ersten Antwort", "Zeit bis zur Lösung")}
# Assumption: goals (first response, resolution) per priority id, on a 24/7 calendar.
GOALS = {"1": (3_600_000, 14_400_000), "2": (7_200_000, 28_800_000), "3": (14_400_000, 86_400_000),
         "4": (28_800_000, 172_800_000), "5": (28_800_000, 172_800_000)}
AGENT_NAMES = ("Mia Krystof", "Ravi Shah", "Ana Ortiz", "Tom Berg")
AUTOMATION_ID = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"  # Automation for Jira's account on every site
PERMISSIONS = {  # key -> (id, name, type)
    "BROWSE_PROJECTS": ("10", "Browse Projects", "PROJECT"),
    "EDIT_ISSUES": ("12", "Edit Issues", "PROJECT"),
    "ADD_COMMENTS": ("15", "Add Comments", "PROJECT"),
    "ADMINISTER_PROJECTS": ("23", "Administer Projects", "PROJECT"),
    "TRANSITION_ISSUES": ("46", "Transition Issues", "PROJECT"),
    "ASSIGN_ISSUES": ("13", "Assign Issues", "PROJECT"),
    "SERVICEDESK_AGENT": ("10100", "Service Desk Agent", "PROJECT"),
    "ADMINISTER": ("0", "Administer Jira", "GLOBAL"),
}
SEARCH_CAP = 100  # issues a search page holds once fields are asked for
IDS_CAP = 5000  # ... when only ids or keys are
CHANGELOG_CAP = 100  # per page of GET issue/{id}/changelog, and inline on GET issue
COMMENTS_CAP = 100
TOKEN_LIFE = timedelta(days=7)
RANKINGS_KEPT = 8  # searches whose order is kept at once (a test may walk several queries side by side)
REMOVED_SEARCH = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
                  "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046")
VP_ORIGIN_MISSING = "Either you don't have access to this request type, or it doesn't exist."
NOT_ON_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."
ISSUE_GONE = "Issue does not exist or you do not have permission to see it."
RATE_LIMITED = "The request has been rate-limited. Please try again later."
_READS = ("/search/jql", "/changelog/bulkfetch", "/search/approximate-count", "/issue/bulkfetch")


class JqlError(ValueError):
    """A JQL query the site would refuse (400)."""


# -- accounts and issues -----------------------------------------------------------------


@dataclass
class _Account:
    account_id: str
    kind: str  # "atlassian" | "customer" | "app"
    name: str
    email: str | None
    zone: str
    agent: bool = False  # SERVICEDESK_AGENT on every service project


@dataclass
class _History:
    id: int
    at: datetime
    author: str
    items: list[dict[str, Any]]


@dataclass
class _Comment:
    id: int
    at: datetime
    author: str
    text: str
    adf: dict[str, Any]
    public: bool


@dataclass
class _Issue:
    id: int
    key: str
    project: str
    created: datetime
    updated: datetime
    type: str  # the story's type
    status: str
    priority: str
    labels: list[str]
    reporter: str
    assignee: str | None
    customer: int
    request_type: bool
    service: str
    sla_status: str | None = None
    group: int | None = None  # index into the story's GROUPS: the "Assignment group" option
    resolved: datetime | None = None
    status_changed: datetime | None = None
    histories: list[_History] = field(default_factory=list)
    comments: list[_Comment] = field(default_factory=list)
    malformed: bool = False
    outside_service_desk: bool = False
    # Bumped by every assignment to any issue's attribute: a search's cached order is valid only
    # while it stands (every change the site makes reassigns a field, ``updated`` at least).
    changes: ClassVar[int] = 0

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        _Issue.changes += 1


def _adf(text: str) -> dict[str, Any]:
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": line}]} for line in text.split("\n") if line]}


def _adf_text(node: Any) -> str:
    if isinstance(node, dict):
        own = node.get("text") if node.get("type") == "text" and isinstance(node.get("text"), str) else ""
        inner = [_adf_text(child) for child in node.get("content") or [] if isinstance(node.get("content"), list)]
        joiner = "" if node.get("type") == "paragraph" else "\n"
        return str(own) + joiner.join(inner)
    return ""


def _is_adf(body: Any) -> bool:
    return isinstance(body, dict) and body.get("type") == "doc" and body.get("version") == 1 and isinstance(body.get("content"), list)


def _millis(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _floor_minute(moment: datetime) -> datetime:
    return EPOCH + timedelta(minutes=(moment - EPOCH) // timedelta(minutes=1))


def _friendly_duration(millis: int) -> str:
    sign = "-" if millis < 0 else ""
    minutes = abs(millis) // 60_000
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h {sign}{minutes}m" if hours else f"{sign}{minutes}m"


def _duration(millis: int) -> dict[str, Any]:
    return {"millis": millis, "friendly": _friendly_duration(millis)}


@total_ordering
class _Desc:
    """Reverses the order of a sort value (ORDER BY ... DESC)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.value == other.value

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    def __hash__(self) -> int:
        return hash(self.value)


# -- JQL ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>>=|<=|!=|=|>|<|\(|\)|,)|(?P<word>[^\s=!<>(),"']+))""")
_RELATIVE = re.compile(r"(?:\s*([-+]?)(\d+)\s*([wdhm]))+\s*")
_RELATIVE_PART = re.compile(r"([-+]?)(\d+)\s*([wdhm])")
_DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")
_DATE_FIELDS = {"updated": "updated", "updateddate": "updated", "created": "created", "createddate": "created",
                "resolved": "resolved", "resolutiondate": "resolved"}
_KEY_FIELDS = ("key", "issuekey", "id", "issue")
_ORDER_FIELDS = {"updated": "updated", "created": "created", "key": "key", "issuekey": "key", "id": "id", "resolved": "resolved",
                 "resolutiondate": "resolved", "priority": "priority", "status": "status"}
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
Predicate = Callable[[_Issue], bool]


@dataclass
class _Query:
    where: Predicate
    order: list[tuple[str, bool]]  # (sort field, descending)
    relative: bool = False  # a relative date literal: the matches depend on the clock


class _Jql:
    """A recursive-descent parser for the JQL subset above; a syntax error raises JqlError."""

    def __init__(self, text: str, zone: ZoneInfo, now: datetime, site: JiraSandbox) -> None:
        self.zone, self.now, self.site = zone, now, site
        self.relative = False
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            if not text[position:].strip():
                break
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise JqlError(f"Error in the JQL Query: The character '{text[position:].strip()[:1]}' is a reserved JQL character. "
                               f"You must enclose it in a string or use the escape '\\u{ord(text[position:].strip()[0]):04x}' instead. "
                               f"(line 1, character {position + 1})")
            kind = match.lastgroup or "word"
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def word(self, *expected: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token[0] == "word" and token[1].lower() in expected

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise JqlError("Error in the JQL Query: Expecting either a value, list or function but got the end of the query.")
        self.at += 1
        return token

    def expect_op(self, op: str) -> None:
        token = self.take()
        if token != ("op", op):
            raise JqlError(f"Error in the JQL Query: Expecting '{op}' but got '{token[1]}'.")

    def parse(self) -> _Query:
        where: Predicate | None = None
        if self.peek() is not None and not (self.word("order") and self.word("by", offset=1)):
            where = self.expression()
        order: list[tuple[str, bool]] = []
        if self.word("order"):
            self.at += 1
            if not self.word("by"):
                raise JqlError("Error in the JQL Query: Expecting 'by' after 'order'.")
            self.at += 1
            order = self.order_by()
        if self.peek() is not None:
            raise JqlError(f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got '{self.peek()[1]}'.")  # type: ignore[index]
        if where is None:
            raise JqlError("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.")
        if len(order) > 7:
            raise JqlError(f"Error in the JQL Query: The ORDER BY clause lists {len(order)} fields; at most 7 are allowed.")  # Assumption: wording
        return _Query(where, order, self.relative)

    def order_by(self) -> list[tuple[str, bool]]:
        order = []
        while True:
            _, text = self.take()
            name = _ORDER_FIELDS.get(text.strip("\"'").lower())
            if name is None:
                raise JqlError(f"Error in the JQL Query: Not able to sort using field '{text}'.")
            descending = False
            if self.word("asc", "desc"):
                descending = self.take()[1].lower() == "desc"
            order.append((name, descending))
            if self.peek() != ("op", ","):
                return order
            self.at += 1

    def expression(self) -> Predicate:
        parts = [self.term()]
        while self.word("or"):
            self.at += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda issue: any(part(issue) for part in parts))

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.word("and"):
            self.at += 1
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda issue: all(part(issue) for part in parts))

    def factor(self) -> Predicate:
        if self.word("not"):
            self.at += 1
            inner = self.factor()
            return lambda issue: not inner(issue)
        if self.peek() == ("op", "("):
            self.at += 1
            inner = self.expression()
            self.expect_op(")")
            return inner
        return self.clause()

    def clause(self) -> Predicate:
        kind, text = self.take()
        if kind == "op":
            raise JqlError(f"Error in the JQL Query: Expecting a field name but got '{text}'.")
        name = (text[1:-1] if kind == "str" else text).lower()
        operator = self.operator()
        if name in _DATE_FIELDS:
            return self.date_clause(_DATE_FIELDS[name], operator, text)
        if operator in ("in", "not in"):
            values = self.value_list()
        elif operator in ("=", "!="):
            values = [self.value()]
        else:
            raise JqlError(f"Error in the JQL Query: The operator '{operator}' is not supported by the '{text}' field.")
        matcher = self.matcher(name, text, values)
        return matcher if operator in ("=", "in") else (lambda issue: not matcher(issue))

    def operator(self) -> str:
        kind, text = self.take()
        if kind == "op" and text in ("=", "!=", ">=", "<=", ">", "<"):
            return text
        if kind == "word" and text.lower() == "in":
            return "in"
        if kind == "word" and text.lower() == "not" and self.word("in"):
            self.at += 1
            return "not in"
        raise JqlError(f"Error in the JQL Query: Expecting operator but got '{text}'. The valid operators are '=', '!=', '<', '>', "
                       "'<=', '>=', 'in' and 'not in'.")

    def value(self) -> str:
        kind, text = self.take()
        if kind == "op":
            raise JqlError(f"Error in the JQL Query: Expecting either a value, list or function but got '{text}'.")
        return re.sub(r"\\(.)", r"\1", text[1:-1]) if kind == "str" else text

    def value_list(self) -> list[str]:
        self.expect_op("(")
        values = [self.value()]
        while self.peek() == ("op", ","):
            self.at += 1
            values.append(self.value())
        self.expect_op(")")
        return values

    def matcher(self, name: str, shown: str, values: list[str]) -> Predicate:
        site = self.site
        if name == "project":
            wanted = set()
            for value in values:
                found = next((k for k, (pid, pname, _) in PROJECTS.items() if value in (k, pid) or value.lower() == pname.lower()), None)
                if found is None:
                    raise JqlError(f"The value '{value}' does not exist for the field 'project'.")
                wanted.add(found)
            return lambda issue: issue.project in wanted
        if name == "labels":
            labels = set(values)
            return lambda issue: bool(labels.intersection(issue.labels))
        if name == "status":
            ids = {site.status_id(value) for value in values}
            return lambda issue: issue.status in ids
        if name == "priority":
            ids = {next((pid for pid, pname in PRIORITIES.items() if value in (pid, pname) or value.lower() == pname.lower()), "")
                   for value in values}
            if "" in ids:
                raise JqlError(f"The value '{values[0]}' does not exist for the field 'priority'.")
            return lambda issue: issue.priority in ids
        if name in _KEY_FIELDS:
            numbers: set[int] = set()
            for value in values:
                if not (value.isdigit() or re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+", value)):
                    raise JqlError(f"The issue key '{value}' for field '{shown}' is invalid.")
                number = site.resolve(value)
                if number is not None:
                    numbers.add(number)
            return lambda issue: issue.id in numbers
        raise JqlError(f"Field '{shown}' does not exist or you do not have permission to view it.")

    def date_clause(self, name: str, operator: str, shown: str) -> Predicate:
        if operator in ("in", "not in"):
            raise JqlError(f"Error in the JQL Query: The operator '{operator}' is not supported by the '{shown}' field.")
        kind, text = self.take()
        if kind == "op":
            raise JqlError(f"Error in the JQL Query: Expecting either a value, list or function but got '{text}'.")
        bound = _floor_minute(self.literal(text[1:-1] if kind == "str" else text, kind == "str", shown))
        compare: Callable[[datetime], bool] = {
            ">=": lambda moment: moment >= bound, "<=": lambda moment: moment <= bound, ">": lambda moment: moment > bound,
            "<": lambda moment: moment < bound, "=": lambda moment: moment == bound, "!=": lambda moment: moment != bound,
        }[operator]

        def test(issue: _Issue) -> bool:
            moment = {"updated": issue.updated, "created": issue.created, "resolved": issue.resolved}[name]
            return moment is not None and compare(moment)
        return test

    def literal(self, text: str, quoted: bool, shown: str) -> datetime:
        if not quoted and re.fullmatch(r"-?\d+", text):
            return EPOCH + timedelta(milliseconds=int(text))  # an unquoted number is epoch milliseconds
        if _RELATIVE.fullmatch(text):
            self.relative = True
            offset = sum((_UNITS[unit] * int(count) * (-1 if sign == "-" else 1) for sign, count, unit in _RELATIVE_PART.findall(text)),
                         timedelta())
            return self.now + offset
        for form in _DATE_FORMATS:
            try:
                local = datetime.strptime(text, form)
            except ValueError:
                continue
            return local.replace(tzinfo=self.zone).astimezone(UTC)  # read in the user's profile zone
        raise JqlError(f"Date value '{text}' for field '{shown}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
                       "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")


# -- the site ----------------------------------------------------------------------------


class JiraSandbox(SandboxServer):
    """The emulator. Read its state directly in tests: ``issues``, ``accounts``, ``requests``,
    ``api_comments``, ``notifications``; change it through the hooks."""

    first_stream = "/rest/api/3/search/jql"
    page_size = SEARCH_CAP

    def __init__(
        self,
        tickets: int = 200,
        *,
        seed: int = 1,
        anchor: datetime | None = None,
        clock: Callable[[], datetime] | None = None,
        email: str = "sla-bot@example.com",
        token: str = "sandbox-token",
        oauth_token: str | None = "sandbox-oauth-token",
        site: str = "sandbox",
        user_zone: str = "America/Los_Angeles",
        site_zone: str = "Europe/Berlin",
        inline_changelog: int = 20,
        inline_comments: int = 20,
        language: str = "en",
        field_seed: int | None = None,
        admin: bool = True,
        search_lag: float = 0.0,
        burst_per_second: int | None = 100,
        issue_writes: tuple[int, float] | None = (10, 10.0),
        deal: tuple[int, int] = (0, 1),
    ) -> None:
        self.base_url = f"https://{site}.atlassian.net"
        super().__init__(clock=clock)
        if language not in SLA_NAMES:
            raise ValueError(f"language {language!r}: the sandbox speaks {', '.join(SLA_NAMES)}")
        self.anchor = (anchor or self.now()).astimezone(UTC).replace(microsecond=0)
        self.email, self.token = email, token
        self.credentials = {f"Basic {base64.b64encode(f'{email}:{token}'.encode()).decode()}"}
        if oauth_token:
            self.credentials.add(f"Bearer {oauth_token}")
        self.user_zone, self.site_zone = ZoneInfo(user_zone), ZoneInfo(site_zone)
        self.inline_changelog, self.inline_comments = inline_changelog, inline_comments
        self.language, self.admin, self.search_lag = language, admin, search_lag
        self.burst, self.issue_writes = burst_per_second, issue_writes
        self._bursts: dict[tuple[str, str], SlidingWindow] = {}
        self._issue_windows: dict[int, SlidingWindow] = {}
        self._rng = random.Random(f"jira:{seed}")
        self.field_ids = self._field_ids(seed if field_seed is None else field_seed)
        self.screen_lacks: set[str] = set()
        self.accounts: dict[str, _Account] = {}
        self.issues: dict[int, _Issue] = {}
        self.gone: set[int] = set()
        self._keys: dict[str, int] = {}
        self._stale: dict[int, tuple[float, _Issue]] = {}  # issue -> (visible to search from, what search shows until then)
        self._rankings: dict[tuple[Any, ...], tuple[list[tuple[Any, ...]], list[_Issue]]] = {}  # see _matches
        self.api_comments: list[dict[str, Any]] = []  # every comment made through the API: issue, route, public, text
        self.notifications = 0  # e-mails an edit would have sent (notifyUsers not false, or ignored)
        self._next_history = 10_000
        self._next_comment = 10_000
        self._endless = 0
        self._path = ""
        self._accounts()
        self._seed(tickets, seed, deal)

    @classmethod
    def for_demo(cls, tickets: int, seed: int, *, deal: tuple[int, int] = (0, 1)) -> JiraSandbox:
        """Real time; limits a demo of 1500 tickets never meets (its write-back peaks near 500
        edits a second to one endpoint over loopback: the burst allows six times that). ``deal=(i, n)``
        keeps the story's tickets whose number % n == i, so one story can be dealt between helpdesks."""
        return cls(tickets, seed=seed, deal=deal, burst_per_second=3000, issue_writes=(10, 10.0))

    @classmethod
    def for_tests(cls, tickets: int, *, anchor: datetime) -> JiraSandbox:
        return cls(tickets, seed=11, anchor=anchor, clock=lambda: anchor, burst_per_second=None, issue_writes=None)

    # -- data -----------------------------------------------------------------------------

    @staticmethod
    def _field_ids(field_seed: int) -> dict[str, str]:
        """Custom field ids differ on every site: drawn from ``field_seed``."""
        # A role added later goes at the end: the sample draws its ids in order, so the others keep theirs.
        roles = ("request_type", "organizations", "first_response", "resolution", "service", "sla_status", "satisfaction",
                 "participants", "group")
        numbers = random.Random(f"jira-fields:{field_seed}").sample(range(10010, 10700), len(roles))
        return {role: f"customfield_{number}" for role, number in zip(roles, numbers, strict=True)}

    def _hex_id(self) -> str:
        return f"{self._rng.getrandbits(96):024x}"

    def _accounts(self) -> None:
        self.bot = self._hex_id()
        self.accounts[self.bot] = _Account(self.bot, "atlassian", "SLA Bot", self.email, self.user_zone.key, agent=True)
        self.agents = []
        for index in range(AGENTS):
            account = _Account(self._hex_id(), "atlassian", AGENT_NAMES[index % len(AGENT_NAMES)],
                               f"agent{index + 1}@provider.example", "Europe/Berlin", agent=True)
            self.accounts[account.account_id] = account
            self.agents.append(account.account_id)
        self.accounts[AUTOMATION_ID] = _Account(AUTOMATION_ID, "app", "Automation for Jira", None, "UTC")
        self.requesters: dict[tuple[int, int], str] = {}
        for customer, name in enumerate(CUSTOMERS):
            domain = name.lower().replace(" ", "").replace(".", "") + ".example"
            for index in range(REQUESTERS):
                licensed = (customer * REQUESTERS + index) % 17 == 4  # a few requesters hold a Jira licence
                uid = self._hex_id() if licensed else (
                    f"qm:{self._rng.getrandbits(32):08x}-{self._rng.getrandbits(16):04x}-{self._rng.getrandbits(16):04x}-"
                    f"{self._rng.getrandbits(16):04x}-{self._rng.getrandbits(48):012x}:{self._rng.getrandbits(92):023x}")
                self.accounts[uid] = _Account(uid, "atlassian" if licensed else "customer", f"{name} user {index + 1}",
                                              f"user{index + 1}@{domain}", "Europe/London")
                self.requesters[(customer, index)] = uid
        # The order /user/permission/search walks the site's users in: agents among the customers.
        self.user_order = sorted(self.accounts)
        self._rng.shuffle(self.user_order)

    def _ms(self, moment: datetime) -> datetime:
        """Jira's times carry milliseconds."""
        return moment + timedelta(milliseconds=self._rng.randrange(1000))

    def _seed(self, count: int, seed: int, deal: tuple[int, int]) -> None:
        latest = self.anchor - timedelta(minutes=5)
        stories = [s for s in tell(count, seed=seed, latest=latest) if s.number % deal[1] == deal[0]]
        numbers = {key: 0 for key in PROJECTS}
        plans: list[tuple[datetime, int, int, Step | tuple[str, int]]] = []
        for story in sorted(stories, key=lambda s: (s.created, s.number)):
            project = "OPS" if story.customer == OPS_CUSTOMER else "SUP"
            numbers[project] += 1
            self._create(story, project, f"{project}-{numbers[project]}")
            plans.extend((self._ms(step.at), story.number, index, step) for index, step in enumerate(story.steps))
            if self._rng.random() < 0.04 and len(story.steps) > 1 and not any(s.delete for s in story.steps):
                first, last = story.steps[0].at, story.steps[-1].at
                entries = self._rng.randrange(13, 31) * 2  # pairs: each change is undone by the next
                for index in range(entries):
                    moment = first + (last - first) * (index + 1) / (entries + 2)
                    plans.append((self._ms(moment), story.number, 1000 + index, ("churn", index)))
        for moment, number, _, step in sorted(plans, key=lambda plan: (plan[0], plan[1], plan[2])):
            if isinstance(step, Step):
                self._apply_story_step(number, moment, step)
            else:
                self._churn(number, moment, step[1])

    def _create(self, story: TicketStory, project: str, key: str) -> None:
        number = story.number
        created = self._ms(story.created)
        issue = _Issue(
            id=number, key=key, project=project, created=created, updated=created, type=story.type, status=WAITING_SUPPORT,
            priority=STORY_PRIORITIES[story.priority], labels=[story.tag], reporter=self.requesters[(story.customer, story.requester)],
            assignee=self.agents[(story.agent - 1) % len(self.agents)], customer=story.customer,
            request_type=self._rng.random() >= 0.05, service=story.service, status_changed=created, group=story.group,
        )
        self.issues[number] = issue
        self._keys[key] = number

    def _apply_story_step(self, number: int, moment: datetime, step: Step) -> None:
        issue = self.issues.get(number)
        if issue is None:
            return
        if step.delete:
            del self.issues[number]
            _Issue.changes += 1  # no attribute moved, but every search's matches did
            self.gone.add(number)
            return
        author = issue.reporter if step.actor == "requester" else issue.assignee or self.bot
        if step.group is not None:  # a handoff: the agent moves the issue to another group
            self._set_group(issue, step.group, author, moment)
        if step.public is not None and not step.first:  # the first step is the request itself (its description)
            text = f"Message on {issue.key}" if step.public else f"Internal: checking {issue.key} with 2nd line"
            self._comment(issue, author, text, step.public, moment)
        target = {"waiting_customer": WAITING_CUSTOMER, "resolved": RESOLVED}.get(step.status or "")
        if step.status == "open":
            # The customer's reply moves it back by JSM's automation rule; an agent takes it in progress.
            target = WAITING_SUPPORT if step.actor == "requester" else IN_PROGRESS
        if target and target != issue.status:
            by = AUTOMATION_ID if step.actor == "requester" else author
            self._transition(issue, target, by, moment)

    def _churn(self, number: int, moment: datetime, index: int, *, bounce: bool = True) -> None:
        """One of a long history's extra histories: labels, assignee, priority or (``bounce``) a
        status bounce between two statuses the story reads alike, each undone by the next, so
        the story's own course stays as it was."""
        issue = self.issues.get(number)
        if issue is None:
            return
        agent = issue.assignee or self.agents[0]
        kind = ("label", "assignee", "priority", "status")[(index // 2) % 4]
        undo = index % 2 == 1
        if kind == "status" and bounce and issue.status in (WAITING_SUPPORT, IN_PROGRESS):
            self._transition(issue, IN_PROGRESS if issue.status == WAITING_SUPPORT else WAITING_SUPPORT, agent, moment)
        elif kind == "assignee":
            other = next(a for a in self.agents if a != issue.assignee) if not undo else self._original_assignee(issue)
            self._set_assignee(issue, other, agent, moment)
        elif kind == "priority":
            original = self._original_priority(issue)
            target = ("2" if original != "2" else "3") if not undo else original
            self._set_priority(issue, target, agent, moment)
        else:
            labels = sorted(set(issue.labels) | {"triage"}) if not undo else [label for label in issue.labels if label != "triage"]
            self._set_labels(issue, labels, agent, moment)

    def _original_assignee(self, issue: _Issue) -> str | None:
        changes = [item for history in issue.histories for item in history.items if item.get("fieldId") == "assignee"]
        return changes[0]["from"] if changes else issue.assignee

    def _original_priority(self, issue: _Issue) -> str:
        changes = [item for history in issue.histories for item in history.items if item.get("fieldId") == "priority"]
        return str(changes[0]["from"]) if changes else issue.priority

    # -- changes (every one dated, each a history or a comment) ---------------------------

    def _history(self, issue: _Issue, author: str, moment: datetime, items: list[dict[str, Any]]) -> None:
        self._next_history += 1
        issue.histories.append(_History(self._next_history, moment, author, items))
        issue.histories.sort(key=lambda history: (history.at, history.id))
        issue.updated = max(issue.updated, moment)

    def _transition(self, issue: _Issue, target: str, author: str, moment: datetime) -> None:
        before = issue.status
        items: list[dict[str, Any]] = [{"field": "status", "fieldtype": "jira", "fieldId": "status", "from": before, "fromString": STATUSES[before][0],
                  "to": target, "toString": STATUSES[target][0]}]
        done_before, done_after = STATUSES[before][1] == "done", STATUSES[target][1] == "done"
        if done_after and not done_before:
            items.append({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution", "from": None, "fromString": None,
                          "to": "10000", "toString": "Done"})
            issue.resolved = moment
        elif done_before and not done_after:
            items.append({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution", "from": "10000", "fromString": "Done",
                          "to": None, "toString": None})
            issue.resolved = None
        issue.status = target
        issue.status_changed = moment
        self._history(issue, author, moment, items)

    def _set_labels(self, issue: _Issue, labels: list[str], author: str, moment: datetime) -> None:
        labels = sorted(dict.fromkeys(labels))  # Assumption: Jira keeps labels sorted
        if labels == issue.labels:
            return
        self._history(issue, author, moment, [{"field": "labels", "fieldtype": "jira", "fieldId": "labels", "from": None,
                                               "fromString": " ".join(issue.labels), "to": None, "toString": " ".join(labels)}])
        issue.labels = labels

    def _set_assignee(self, issue: _Issue, account: str | None, author: str, moment: datetime) -> None:
        if account == issue.assignee:
            return
        def name(uid: str | None) -> str | None:
            return self.accounts[uid].name if uid else None
        self._history(issue, author, moment, [{"field": "assignee", "fieldtype": "jira", "fieldId": "assignee", "from": issue.assignee,
                                               "fromString": name(issue.assignee), "to": account, "toString": name(account)}])
        issue.assignee = account

    def _set_priority(self, issue: _Issue, priority: str, author: str, moment: datetime) -> None:
        if priority == issue.priority:
            return
        self._history(issue, author, moment, [{"field": "priority", "fieldtype": "jira", "fieldId": "priority", "from": issue.priority,
                                               "fromString": PRIORITIES[issue.priority], "to": priority, "toString": PRIORITIES[priority]}])
        issue.priority = priority

    def _set_group(self, issue: _Issue, group: int | None, author: str, moment: datetime) -> None:
        """A select change: ``from``/``to`` the option ids, the strings their values."""
        if group == issue.group:
            return
        def option(index: int | None) -> tuple[str | None, str | None]:
            return (None, None) if index is None else (GROUP_OPTIONS[index], GROUPS[index])
        (before, before_text), (after, after_text) = option(issue.group), option(group)
        self._history(issue, author, moment, [{"field": self._custom_name("group"), "fieldtype": "custom", "fieldId": self.field_ids["group"],
                                               "from": before, "fromString": before_text, "to": after, "toString": after_text}])
        issue.group = group

    def _set_text(self, issue: _Issue, role: str, value: str | None, author: str, moment: datetime) -> None:
        before = issue.sla_status if role == "sla_status" else issue.service
        if value == before:
            return
        fid = self.field_ids[role]
        self._history(issue, author, moment, [{"field": self._custom_name(role), "fieldtype": "custom", "fieldId": fid, "from": None,
                                               "fromString": before, "to": None, "toString": value}])
        if role == "sla_status":
            issue.sla_status = value
        else:
            issue.service = value or ""

    def _comment(self, issue: _Issue, author: str, text: str, public: bool, moment: datetime,
                 adf: dict[str, Any] | None = None) -> _Comment:
        self._next_comment += 1
        comment = _Comment(self._next_comment, moment, author, text, adf or _adf(text), public)
        issue.comments.append(comment)
        issue.comments.sort(key=lambda c: (c.at, c.id))
        issue.updated = max(issue.updated, moment)
        return comment

    def _before_change(self, issue: _Issue) -> None:
        """Eventual consistency: search goes on showing the issue as it was for ``search_lag`` seconds."""
        if self.search_lag <= 0:
            return
        now = self.now().timestamp()
        kept = self._stale.get(issue.id)
        snapshot = kept[1] if kept and kept[0] > now else copy.deepcopy(issue)
        self._stale[issue.id] = (now + self.search_lag, snapshot)

    # -- changing the world from a test ---------------------------------------------------

    def customer_replies(self, number: int, at: datetime | None = None, author: str | None = None) -> None:
        """The requester (or ``author``) comments, as by e-mail; JSM's automation moves a
        resolved or waiting issue back to "Waiting for support"."""
        with self._lock:
            issue = self.issues[number]
            self._before_change(issue)
            moment = at or self.now()
            self._comment(issue, author or issue.reporter, "Any news?", True, moment)
            if issue.status in (WAITING_CUSTOMER, RESOLVED):
                self._transition(issue, WAITING_SUPPORT, AUTOMATION_ID, moment)

    def agent_replies(self, number: int, at: datetime | None = None, *, waiting: bool = False) -> None:
        """The assignee answers publicly, and with ``waiting`` moves the issue to "Waiting for
        customer" (the resolution SLA pauses); otherwise an unanswered issue goes "In Progress"."""
        with self._lock:
            issue = self.issues[number]
            self._before_change(issue)
            moment = at or self.now()
            agent = issue.assignee or self.agents[0]
            self._comment(issue, agent, "Could you send the logs?" if waiting else "Looking into it.", True, moment)
            target = WAITING_CUSTOMER if waiting else IN_PROGRESS
            if issue.status != target and (waiting or issue.status == WAITING_SUPPORT):
                self._transition(issue, target, agent, moment)

    def agent_edits(self, number: int, labels: list[str] | None = None, at: datetime | None = None) -> None:
        """An agent edits the issue in the UI (moves ``updated``): its labels, or its summary."""
        with self._lock:
            issue = self.issues[number]
            self._before_change(issue)
            moment = at or self.now()
            agent = issue.assignee or self.agents[0]
            if labels is not None:
                self._set_labels(issue, list(labels), agent, moment)
            else:
                self._history(issue, agent, moment, [{"field": "summary", "fieldtype": "jira", "fieldId": "summary", "from": None,
                                                      "fromString": f"Request {number}", "to": None, "toString": f"Request {number}"}])

    def long_history(self, number: int, entries: int) -> None:
        """``entries`` (rounded up to even) more histories on issue ``number``, label, assignee and
        priority churn each undone by the next, between its creation and its last change, so the
        inline changelog truncates. (No status bounces: they would cross the story's own statuses.)"""
        with self._lock:
            issue = self.issues[number]
            first, last = issue.created, issue.updated
            entries += entries % 2
            for index in range(entries):
                self._churn(number, first + (last - first) * (index + 1) / (entries + 2), index, bounce=False)
            issue.updated = max(issue.updated, last)

    def malform(self, number: int) -> None:
        """Issue ``number`` comes out malformed (its ``fields.status`` a list)."""
        with self._lock:
            self.issues[number].malformed = True

    def unknown_value(self, number: int) -> str:
        """Issue ``number`` moves to a status the site added, which no default maps."""
        with self._lock:
            self.issues[number].status = ESCALATED
            return STATUSES[ESCALATED][0]

    def busy_ticket(self) -> None:
        """None: Jira pages comments by offset; no response names a link to follow."""
        return None

    def noted(self, number: int, marker: str, at: datetime | None = None) -> None:
        """An internal note by the API user carrying ``marker`` (posted before this pull, by a run
        against another store); four minutes before the anchor unless ``at`` says."""
        with self._lock:
            issue = self.issues[number]
            self._before_change(issue)
            self._comment(issue, self.bot, f"SLA breach recorded by sla-bridge. {marker}", False, at or self.anchor - timedelta(minutes=4))

    def downgrade(self, account_id: str) -> None:
        """The account loses SERVICEDESK_AGENT on every project (its licence was taken away)."""
        with self._lock:
            self.accounts[account_id].agent = False

    def edit_screen_lacks(self, field_id: str) -> None:
        """The field is not on the edit screen: a PUT that sets it is a 400 naming it."""
        with self._lock:
            self.screen_lacks.add(field_id)

    def hand_off(self, number: int, group: int | None, at: datetime | None = None) -> None:
        """The assignee hands issue ``number`` to ``GROUPS[group]`` (None: clears the group)."""
        with self._lock:
            issue = self.issues[number]
            self._before_change(issue)
            self._set_group(issue, group, issue.assignee or self.agents[0], at or self.now())

    def outside_service_desk(self, number: int) -> None:
        """The issue's SLA fields answer as outside a service project (the error object)."""
        with self._lock:
            self.issues[number].outside_service_desk = True

    def public_comments_by(self, account_id: str) -> list[str]:
        """The texts of public comments by ``account_id`` on any issue (the API user's should be none)."""
        return [c.text for issue in self.issues.values() for c in issue.comments if c.public and c.author == account_id]

    def writes(self) -> int:
        """Requests that change something: edits and comments (not the POST searches)."""
        return sum(1 for method, path, _ in self.requests if method not in ("GET", "HEAD") and not path.endswith(_READS))

    # -- what the core reads through the sandbox protocol ---------------------------------

    def source_config(self, url: str, token_env: str) -> dict[str, Any]:
        return {
            "system": "jira",
            "url": url,
            "start": (self.anchor - timedelta(days=100)).date().isoformat(),
            "auth": {"email": self.email, "token_env": token_env},
            "projects": list(PROJECTS),
            "fields": {"customer": "organizations", "service": "name:Service", "group": "name:Assignment group"},
            "writeback": {"enabled": True, "status_field": self.field_ids["sla_status"]},
        }

    def writeback_summary(self) -> WritebackSummary:
        tagged = sum(1 for issue in self.issues.values() if any(label.startswith("sla_") for label in issue.labels))
        notes = [c.text for issue in self.issues.values() for c in issue.comments if not c.public and "[sla-bridge:" in c.text]
        return WritebackSummary(tickets_tagged=tagged, notes=notes)

    # -- lookups and rendering ------------------------------------------------------------

    def resolve(self, id_or_key: str) -> int | None:
        """The issue id an id or key names (None when there is none, or it was deleted)."""
        number = int(id_or_key) if id_or_key.isdigit() else self._keys.get(id_or_key.upper())
        return number if number is not None and number in self.issues else None

    def status_id(self, value: str) -> str:
        for sid, (name, _) in STATUSES.items():
            if value == sid or value.lower() == name.lower():
                return sid
        raise JqlError(f"The value '{value}' does not exist for the field 'status'.")

    def _custom_name(self, role: str) -> str:
        first, resolution = SLA_NAMES[self.language]
        return {"request_type": "Request Type", "organizations": "Organizations", "first_response": first, "resolution": resolution,
                "service": "Service", "sla_status": "SLA status", "satisfaction": "Satisfaction", "group": "Assignment group",
                "participants": "Request participants"}[role]

    def stamp(self, moment: datetime) -> str:
        """``yyyy-MM-dd'T'HH:mm:ss.SSS+HHMM`` in the site's zone."""
        local = moment.astimezone(self.site_zone)
        return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond // 1000:03d}{local:%z}"

    def _date_dto(self, moment: datetime) -> dict[str, Any]:
        local = moment.astimezone(self.site_zone)
        return {"iso8601": f"{local:%Y-%m-%dT%H:%M:%S%z}", "jira": self.stamp(moment),
                "friendly": f"{local:%d/%b/%y %I:%M %p}", "epochMillis": _millis(moment)}

    def _user(self, account_id: str | None) -> dict[str, Any] | None:
        if account_id is None:
            return None
        account = self.accounts[account_id]
        user: dict[str, Any] = {"self": self.link("/rest/api/3/user", {"accountId": account_id}), "accountId": account_id}
        if account.email:
            user["emailAddress"] = account.email
        user.update({"displayName": account.name, "active": True, "timeZone": account.zone, "accountType": account.kind})
        return user

    def _jsm_user(self, account_id: str) -> dict[str, Any]:
        account = self.accounts[account_id]
        user: dict[str, Any] = {"accountId": account_id, "displayName": account.name, "active": True, "timeZone": account.zone,
                                "_links": {"jiraRest": self.link("/rest/api/2/user", {"accountId": account_id}),
                                           "self": self.link("/rest/api/2/user", {"accountId": account_id})}}
        if account.email:
            user["emailAddress"] = account.email
        return user

    def _status(self, sid: str) -> dict[str, Any]:
        name, category = STATUSES[sid]
        cid, cname, colour = CATEGORIES[category]
        return {"self": self.link(f"/rest/api/3/status/{sid}"), "description": "", "iconUrl": self.link("/images/icons/statuses/generic.png"),
                "name": name, "id": sid, "statusCategory": {"self": self.link(f"/rest/api/3/statuscategory/{cid}"), "id": cid,
                                                            "key": category, "colorName": colour, "name": cname}}

    def _history_view(self, issue: _Issue, history: _History, field_ids: set[str] | None = None) -> dict[str, Any]:
        items = [dict(item) for item in history.items if field_ids is None or item.get("fieldId") in field_ids]
        return {"id": str(history.id), "author": self._user(history.author), "created": self.stamp(history.at), "items": items}

    def _comment_view(self, issue: _Issue, comment: _Comment, properties: bool = False) -> dict[str, Any]:
        view: dict[str, Any] = {
            "self": self.link(f"/rest/api/3/issue/{issue.id}/comment/{comment.id}"),
            "id": str(comment.id),
            "author": self._user(comment.author),
            "body": comment.adf,
            "updateAuthor": self._user(comment.author),
            "created": self.stamp(comment.at),
            "updated": self.stamp(comment.at),
            "jsdPublic": comment.public,
        }
        if properties:  # Assumption: a public comment carries no sd.public.comment property
            view["properties"] = [] if comment.public else [{"key": "sd.public.comment", "value": {"internal": True}}]
        return view

    def _jsm_comment_view(self, issue: _Issue, comment: _Comment) -> dict[str, Any]:
        return {"_expands": ["attachment", "renderedBody"], "id": str(comment.id), "body": comment.text, "public": comment.public,
                "author": self._jsm_user(comment.author), "created": self._date_dto(comment.at),
                "_links": {"self": self.link(f"/rest/servicedeskapi/request/{issue.id}/comment/{comment.id}")}}

    def _sla_value(self, issue: _Issue, role: str) -> dict[str, Any] | None:
        if issue.outside_service_desk:
            return {"errorMessage": "The service project you are trying to view does not exist.",
                    "i18nErrorMessage": {"i18nKey": "sd.agent.error.servicedesk.notfound", "parameters": []}}
        if not issue.request_type:
            return None  # the SLA's conditions never match an issue that is no request
        sla_id = "1" if role == "first_response" else "2"
        value: dict[str, Any] = {"id": sla_id, "name": self._custom_name(role),
                                 "_links": {"self": self.link(f"/rest/servicedeskapi/request/{issue.id}/sla/{sla_id}")},
                                 "completedCycles": []}
        if role == "first_response" and issue.type == "task":
            value["slaDisplayFormat"] = "NEW_SLA_FORMAT"
            return value  # no goal applies to a task: no cycle at all, and no ongoingCycle key
        goal = GOALS[issue.priority][0 if role == "first_response" else 1]
        cycles = self._first_response_cycles(issue) if role == "first_response" else self._resolution_cycles(issue)
        now = self.now()
        for start, stop, paused_ms, paused in cycles:
            end = stop or now
            elapsed = max(0, _millis(end) - _millis(start) - paused_ms)
            cycle: dict[str, Any] = {"startTime": self._date_dto(start)}
            if stop is not None:
                cycle["stopTime"] = self._date_dto(stop)
            cycle.update({"breachTime": self._date_dto(start + timedelta(milliseconds=goal + paused_ms)), "breached": elapsed > goal})
            if stop is None:
                cycle.update({"paused": paused, "withinCalendarHours": True})
            cycle.update({"goalDuration": _duration(goal), "elapsedTime": _duration(elapsed), "remainingTime": _duration(goal - elapsed)})
            if stop is None:
                value["ongoingCycle"] = cycle
            else:
                value["completedCycles"].append(cycle)
        value["slaDisplayFormat"] = "NEW_SLA_FORMAT"
        return value

    def _timeline(self, issue: _Issue) -> list[tuple[datetime, str]]:
        moments = [(issue.created, WAITING_SUPPORT)]
        moments.extend((history.at, str(item["to"])) for history in issue.histories for item in history.items
                       if item.get("fieldId") == "status" and item.get("to") in STATUSES)
        return moments

    def _first_response_cycles(self, issue: _Issue) -> list[tuple[datetime, datetime | None, int, bool]]:
        answered = [c.at for c in issue.comments if c.public and self.accounts[c.author].agent and self.accounts[c.author].kind == "atlassian"]
        resolved = [at for at, sid in self._timeline(issue) if STATUSES[sid][1] == "done"]
        stops = sorted(answered[:1] + resolved[:1])
        return [(issue.created, stops[0] if stops else None, 0, False)]

    def _resolution_cycles(self, issue: _Issue) -> list[tuple[datetime, datetime | None, int, bool]]:
        """A cycle from creation (or a reopening) to resolution, paused while waiting for the customer."""
        cycles: list[tuple[datetime, datetime | None, int, bool]] = []
        start: datetime | None = None
        paused_ms, paused_since = 0, None
        for at, sid in self._timeline(issue):
            done, waiting = STATUSES[sid][1] == "done", sid == WAITING_CUSTOMER
            if start is None and not done:
                start, paused_ms, paused_since = at, 0, None
            if start is None:
                continue
            if paused_since is not None and not waiting:
                paused_ms += _millis(at) - _millis(paused_since)
                paused_since = None
            if waiting and paused_since is None:
                paused_since = at
            if done:
                cycles.append((start, at, paused_ms, False))
                start = None
        if start is not None:
            if paused_since is not None:
                paused_ms += _millis(self.now()) - _millis(paused_since)
            cycles.append((start, None, paused_ms, paused_since is not None))
        return cycles

    def _request_type_value(self, issue: _Issue) -> dict[str, Any] | None:
        if not issue.request_type:
            return None
        _, _, desk = PROJECTS[issue.project]
        type_id, _ = ISSUE_TYPES[issue.type]
        rt_id, rt_name = REQUEST_TYPES[issue.type]
        return {
            "_links": {"jiraRest": self.link(f"/rest/api/2/issue/{issue.id}"),
                       "web": self.link(f"/servicedesk/customer/portal/{desk}/{issue.key}"),
                       "agent": self.link(f"/browse/{issue.key}"), "self": self.link(f"/rest/servicedeskapi/request/{issue.id}")},
            "requestType": {"_expands": ["field"], "id": rt_id,
                            "_links": {"self": self.link(f"/rest/servicedeskapi/servicedesk/{desk}/requesttype/{rt_id}")},
                            "name": rt_name, "description": "", "helpText": "", "issueTypeId": type_id, "serviceDeskId": desk,
                            "portalId": desk, "groupIds": ["1"]},
            "currentStatus": {"status": STATUSES[issue.status][0], "statusCategory": STATUSES[issue.status][1].upper(),
                              "statusDate": self._date_dto(issue.status_changed or issue.created)},
        }

    def _comment_page(self, issue: _Issue) -> dict[str, Any]:
        comments = issue.comments[: self.inline_comments]
        return {"comments": [self._comment_view(issue, c) for c in comments], "self": self.link(f"/rest/api/3/issue/{issue.id}/comment"),
                "maxResults": len(comments), "total": len(issue.comments), "startAt": 0}

    def _organizations_value(self, issue: _Issue) -> list[dict[str, Any]]:
        organization = str(issue.customer + 1)
        return [{"id": organization, "name": CUSTOMERS[issue.customer],
                 "_links": {"self": self.link(f"/rest/servicedeskapi/organization/{organization}")}}]

    def _service_value(self, issue: _Issue) -> dict[str, Any] | None:
        if issue.service not in ("email", "vpn", "printing"):
            return None
        option = 10100 + ["email", "vpn", "printing"].index(issue.service)
        return {"self": self.link(f"/rest/api/3/customFieldOption/{option}"), "value": issue.service, "id": str(option)}

    def _group_value(self, issue: _Issue) -> dict[str, Any] | None:
        if issue.group is None:
            return None
        option = GROUP_OPTIONS[issue.group]
        return {"self": self.link(f"/rest/api/3/customFieldOption/{option}"), "value": GROUPS[issue.group], "id": option}

    def _field_renderers(self, issue: _Issue) -> dict[str, Callable[[], Any]]:
        """Every field of the issue, in the site's order, each rendered only when called: a search
        page renders only the fields it was asked for (the SLA fields are the dear ones)."""
        project_id, project_name, _ = PROJECTS[issue.project]
        type_id, type_name = ISSUE_TYPES[issue.type]
        return {
            "summary": lambda: f"Request {issue.id}",
            "description": lambda: _adf(f"Customer report {issue.id}"),
            "project": lambda: {"self": self.link(f"/rest/api/3/project/{project_id}"), "id": project_id, "key": issue.project,
                                "name": project_name, "projectTypeKey": "service_desk", "simplified": False},
            "issuetype": lambda: {"self": self.link(f"/rest/api/3/issuetype/{type_id}"), "id": type_id, "description": "",
                                  "name": type_name, "subtask": False, "hierarchyLevel": 0},
            "status": lambda: [self._status(issue.status)] if issue.malformed else self._status(issue.status),
            "statuscategorychangedate": lambda: self.stamp(issue.status_changed or issue.created),
            "priority": lambda: {"self": self.link(f"/rest/api/3/priority/{issue.priority}"), "name": PRIORITIES[issue.priority],
                                 "id": issue.priority},
            "created": lambda: self.stamp(issue.created),
            "updated": lambda: self.stamp(issue.updated),
            "resolution": lambda: {"self": self.link("/rest/api/3/resolution/10000"), "id": "10000", "name": "Done"} if issue.resolved else None,
            "resolutiondate": lambda: self.stamp(issue.resolved) if issue.resolved else None,
            "labels": lambda: list(issue.labels),
            "reporter": lambda: self._user(issue.reporter),
            "creator": lambda: self._user(issue.reporter),
            "assignee": lambda: self._user(issue.assignee),
            "components": lambda: [],
            "comment": lambda: self._comment_page(issue),
            self.field_ids["request_type"]: lambda: self._request_type_value(issue),
            self.field_ids["organizations"]: lambda: self._organizations_value(issue),
            self.field_ids["first_response"]: lambda: self._sla_value(issue, "first_response"),
            self.field_ids["resolution"]: lambda: self._sla_value(issue, "resolution"),
            self.field_ids["service"]: lambda: self._service_value(issue),
            self.field_ids["group"]: lambda: self._group_value(issue),
            self.field_ids["sla_status"]: lambda: issue.sla_status,
            self.field_ids["satisfaction"]: lambda: None,
            self.field_ids["participants"]: lambda: [],
        }

    def _issue_view(self, issue: _Issue, wanted: list[str], expand: set[str], changelog_cap: int) -> dict[str, Any]:
        view: dict[str, Any] = {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
                                "id": str(issue.id), "self": self.link(f"/rest/api/3/issue/{issue.id}"), "key": issue.key}
        renderers = self._field_renderers(issue)
        chosen = self._chosen(wanted, renderers)
        if chosen:
            view["fields"] = {name: renderers[name]() for name in chosen}
        if "names" in expand:
            names = {f["id"]: f["name"] for f in self._fields()}
            view["names"] = {name: names.get(name, name) for name in chosen}
        if "changelog" in expand:
            newest = sorted(issue.histories, key=lambda h: (h.at, h.id), reverse=True)[:changelog_cap]
            view["changelog"] = {"startAt": 0, "maxResults": len(newest), "total": len(issue.histories),
                                 "histories": [self._history_view(issue, h) for h in newest]}
        return view

    @staticmethod
    def _chosen(wanted: list[str], every: dict[str, Any]) -> list[str]:
        """The field ids ``fields=`` asks for: names, ``*all``/``*navigable``, ``-name`` exclusions; unknown names are ignored."""
        chosen: list[str] = []
        for name in wanted:
            if name in ("*all", "*navigable"):
                chosen.extend(n for n in every if n not in chosen)
            elif name in every and name not in chosen:
                chosen.append(name)
        excluded = {name[1:] for name in wanted if name.startswith("-")}
        return [name for name in chosen if name not in excluded]

    def _fields(self) -> list[dict[str, Any]]:
        """``GET /rest/api/3/field``: the system fields the connector meets, then the custom ones."""
        def system(fid: str, name: str, kind: str, items: str | None = None, *, orderable: bool = True) -> dict[str, Any]:
            schema: dict[str, Any] = {"type": kind, "system": fid}
            if items:
                schema["items"] = items
            return {"id": fid, "key": fid, "name": name, "custom": False, "orderable": orderable, "navigable": True, "searchable": True,
                    "clauseNames": [fid], "schema": schema}

        def custom(role: str, kind: str, plugin: str, items: str | None = None) -> dict[str, Any]:
            fid = self.field_ids[role]
            number = int(fid.removeprefix("customfield_"))
            schema: dict[str, Any] = {"type": kind, "custom": plugin, "customId": number}
            if items:
                schema["items"] = items
            name = self._custom_name(role)
            return {"id": fid, "key": fid, "name": name, "custom": True, "orderable": True, "navigable": True,
                    "searchable": True, "clauseNames": [f"cf[{number}]", name], "schema": schema}

        jsm = "com.atlassian.servicedesk:"
        plugin = "com.atlassian.jira.plugin.system.customfieldtypes:"
        return [
            system("summary", "Summary", "string"), system("description", "Description", "string"),
            system("project", "Project", "project", orderable=False), system("issuetype", "Issue Type", "issuetype"),
            system("status", "Status", "status", orderable=False), system("priority", "Priority", "priority"),
            system("created", "Created", "datetime", orderable=False), system("updated", "Updated", "datetime", orderable=False),
            system("resolutiondate", "Resolved", "datetime", orderable=False), system("resolution", "Resolution", "resolution"),
            system("labels", "Labels", "array", "string"), system("reporter", "Reporter", "user"), system("assignee", "Assignee", "user"),
            system("components", "Components", "array", "component"), system("comment", "Comment", "comments-page"),
            custom("request_type", "sd-customerrequesttype", jsm + "vp-origin"),
            custom("organizations", "array", jsm + "sd-customer-organizations", "sd-customerorganization"),
            custom("first_response", "sd-servicelevelagreement", jsm + "sd-sla-field"),
            custom("resolution", "sd-servicelevelagreement", jsm + "sd-sla-field"),
            custom("service", "option", plugin + "select"),
            custom("group", "option", plugin + "select"),
            custom("sla_status", "string", plugin + "textfield"),
            custom("satisfaction", "sd-feedback", jsm + "sd-request-feedback"),
            custom("participants", "array", jsm + "sd-request-participants", "user"),
        ]

    # -- HTTP -----------------------------------------------------------------------------

    def authorized(self, request: httpx.Request) -> bool:
        self._path = request.url.path
        return request.headers.get("Authorization") in self.credentials

    def unauthorized(self) -> httpx.Response:
        if self._path.startswith("/rest/servicedeskapi/"):
            return self._jsm_error(401, "You are not authenticated. Authentication required to perform this operation.",
                                   "sd.customerview.error.unauthenticated")
        return self._error(401, ["Client must be authenticated to access this resource."])

    def describe(self, request: httpx.Request, query: Query) -> Query:
        """A POST search or bulk fetch is logged with what its JSON body asks (the page's token)."""
        if request.method != "POST" or not request.url.path.endswith(_READS):
            return query
        try:
            body = json.loads(request.content) if request.content else {}
        except json.JSONDecodeError:
            return query
        if not isinstance(body, dict):
            return query
        return {**query, **{key: [value if isinstance(value, str) else json.dumps(value)] for key, value in body.items()}}

    @staticmethod
    def _error(status: int, messages: list[str], errors: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> httpx.Response:
        return json_response(status, {"errorMessages": messages, "errors": errors or {}}, headers)

    @staticmethod
    def _jsm_error(status: int, message: str, key: str) -> httpx.Response:
        return json_response(status, {"errorMessage": message, "i18nErrorMessage": {"i18nKey": key, "parameters": []}})

    def route(self, request: httpx.Request, path: str, query: Query, body: Any) -> httpx.Response:
        method = request.method
        if body is None:
            return self._error(400, ["Unexpected character in the request body: it is not JSON."])  # Assumption: wording
        if re.fullmatch(r"/rest/api/(2|3|latest)/search", path):
            return self._error(410, [REMOVED_SEARCH])
        if path == "/rest/api/3/search/jql" and method in ("GET", "POST"):
            return self._search(query, body, method)
        if path == "/rest/api/3/changelog/bulkfetch" and method == "POST":
            return self._bulk_changelog(body)
        if method == "GET" and path == "/rest/api/3/myself":
            return json_response(200, self._myself())
        if method == "GET" and path == "/rest/api/3/field":
            return json_response(200, self._fields())
        if method == "GET" and path == "/rest/api/3/mypermissions":
            return self._my_permissions(query)
        if method == "GET" and path == "/rest/api/3/user/permission/search":
            return self._permission_search(query)
        if method == "GET" and path == "/rest/servicedeskapi/servicedesk":
            return self._service_desks(query)
        issue_path = re.fullmatch(r"/rest/api/3/issue/([^/]+)(/changelog|/comment)?", path)
        if issue_path:
            return self._issue_route(method, issue_path.group(1), issue_path.group(2) or "", query, body)
        request_path = re.fullmatch(r"/rest/servicedeskapi/request/([^/]+)/comment", path)
        if request_path:
            return self._request_comments(method, request_path.group(1), query, body)
        return self.not_found()

    def not_found(self) -> httpx.Response:
        if self._path.startswith("/rest/servicedeskapi/"):
            return self._jsm_error(404, "Not found", "sd.error.notfound")  # Assumption: wording
        return self._error(404, ["Not found"])  # Assumption: wording

    def _issue_route(self, method: str, id_or_key: str, rest: str, query: Query, body: Any) -> httpx.Response:
        number = self.resolve(id_or_key)
        if number is None:
            return self._error(404, [ISSUE_GONE])
        issue = self.issues[number]
        if rest == "" and method == "GET":
            wanted = self._list_param(query.get("fields")) or ["*all"]
            expand = set(self._list_param(query.get("expand")))
            return json_response(200, self._issue_view(issue, wanted, expand, CHANGELOG_CAP))
        if rest == "" and method == "PUT":
            return self._edit(issue, query, body)
        if rest == "/changelog" and method == "GET":
            return self._changelog(issue, query)
        if rest == "/comment" and method == "GET":
            return self._list_comments(issue, query)
        if rest == "/comment" and method == "POST":
            return self._add_comment(issue, body)
        return self._error(405, ["Method not allowed"])  # Assumption: wording

    @staticmethod
    def _one(query: Query, name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    @staticmethod
    def _list_param(values: list[str] | None) -> list[str]:
        return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]

    @staticmethod
    def _int_param(query: Query, name: str, default: int) -> int:
        text = (query.get(name) or [str(default)])[0]
        try:
            return int(text)
        except ValueError:
            raise _BadRequest(name, f"The '{name}' parameter must be a number, not '{text}'.") from None  # Assumption: wording

    # -- search ---------------------------------------------------------------------------

    def _search(self, query: Query, body: Any, method: str) -> httpx.Response:
        try:
            request = self._search_request(query, body, method)
            parsed = _Jql(request["jql"], self.user_zone, self.now(), self).parse()
        except _BadRequest as bad:
            return self._error(400, [bad.message])
        except JqlError as bad:
            return self._error(400, [str(bad)])
        wanted: list[str] = request["fields"]
        expand: set[str] = request["expand"]
        heavy = any(name not in ("id", "key") for name in wanted) or bool(expand)
        size = max(1, min(request["maxResults"], SEARCH_CAP if heavy else IDS_CAP))
        order = parsed.order or [("id", False)]
        digest = hashlib.sha256(request["jql"].encode()).hexdigest()[:16]
        after: list[Any] | None = None
        if request["nextPageToken"] is not None:
            after = self._read_token(request["nextPageToken"], digest)
            if after is None:
                return self._error(400, ["The provided next page token is invalid or expired."])  # Assumption: wording
        keys, matches = self._matches(request["jql"], parsed, order, set(request["reconcileIssues"]))
        start = 0 if after is None else bisect.bisect_right(keys, self._comparable(after, order))  # the first key past the token's
        page, more = matches[start : start + size], len(matches) - start > size
        payload: dict[str, Any] = {"issues": [self._issue_view(issue, wanted, expand, self.inline_changelog) for issue in page]}
        if more:
            payload["nextPageToken"] = self._token(digest, self._raw_key(page[-1], order))
        payload["isLast"] = not more
        return json_response(200, payload)

    def _matches(self, jql: str, parsed: _Query, order: list[tuple[str, bool]],
                 reconcile: set[int]) -> tuple[list[tuple[Any, ...]], list[_Issue]]:
        """The issues the query matches, as search sees them, in its order, with their sort keys.

        Ranked once and kept while nothing a search sees moves: no issue changed (``_Issue.changes``),
        the same issues lag their writes, and the clock stands still for a relative date. A walk's
        pages then bisect one ranking for their token's position instead of each scanning and
        sorting the whole site, which made a walk quadratic in the issues."""
        now = self.now()
        lagging = frozenset(number for number, (until, _) in self._stale.items() if until > now.timestamp() and number not in reconcile)
        key = (jql, self.user_zone.key, now if parsed.relative else None, lagging, _Issue.changes)
        ranked = self._rankings.get(key)
        if ranked is None:
            issues = (self._searched(issue, reconcile) for issue in self.issues.values())
            pairs = sorted(((self._sort_key(issue, order), issue) for issue in issues if parsed.where(issue)), key=lambda pair: pair[0])
            ranked = ([sort_key for sort_key, _ in pairs], [issue for _, issue in pairs])
            kept = [(old, value) for old, value in self._rankings.items() if old[-1] == _Issue.changes][-(RANKINGS_KEPT - 1):]
            self._rankings = {**dict(kept), key: ranked}
        return ranked

    def _search_request(self, query: Query, body: Any, method: str) -> dict[str, Any]:
        """The search's parameters, from the query (GET) or the JSON body (POST), validated as
        ``SearchAndReconcileRequestBean``: no other keys, each of its type."""
        if method == "POST":
            if not isinstance(body, dict):
                raise _BadRequest("body", "The request body must be a JSON object.")
            allowed = {"jql", "nextPageToken", "maxResults", "fields", "expand", "properties", "fieldsByKeys", "failFast", "reconcileIssues"}
            for name in body:
                if name not in allowed:
                    raise _BadRequest(name, f'Unrecognized field "{name}" (class SearchAndReconcileRequestBean), not marked as ignorable')
            raw = dict(body)
        else:
            raw = {"jql": self._one(query, "jql"), "nextPageToken": self._one(query, "nextPageToken"),
                   "maxResults": self._int_param(query, "maxResults", 50),
                   "fields": self._list_param(query.get("fields")) if "fields" in query else None,
                   "expand": ",".join(query["expand"]) if "expand" in query else None,
                   "reconcileIssues": [int(v) for v in self._list_param(query.get("reconcileIssues")) if v.isdigit()]}
        jql, token, size = raw.get("jql"), raw.get("nextPageToken"), raw.get("maxResults", 50)
        fields, expand, reconcile = raw.get("fields"), raw.get("expand"), raw.get("reconcileIssues") or []
        if not isinstance(jql, str) or not jql.strip():
            raise _BadRequest("jql", "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.")
        if token is not None and not isinstance(token, str):
            raise _BadRequest("nextPageToken", "nextPageToken must be a string.")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _BadRequest("maxResults", "maxResults must be a non-negative integer.")
        if fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
            raise _BadRequest("fields", "fields must be a list of field names.")
        if expand is not None and not isinstance(expand, str):
            raise _BadRequest("expand", "expand is a comma-delimited string, not a list.")
        if not (isinstance(reconcile, list) and len(reconcile) <= 50 and all(isinstance(i, int) and not isinstance(i, bool) for i in reconcile)):
            raise _BadRequest("reconcileIssues", "reconcileIssues takes at most 50 issue ids.")
        return {"jql": jql, "nextPageToken": token, "maxResults": size, "fields": [f for part in fields or ["id"] for f in part.split(",") if f],
                "expand": {part.strip() for part in (expand or "").split(",") if part.strip()}, "reconcileIssues": reconcile}

    def _searched(self, issue: _Issue, reconcile: set[int]) -> _Issue:
        """The issue as search sees it now: as it was before a write, for ``search_lag`` seconds."""
        kept = self._stale.get(issue.id)
        if kept is None or issue.id in reconcile or kept[0] <= self.now().timestamp():
            return issue
        return kept[1]

    def _raw_key(self, issue: _Issue, order: list[tuple[str, bool]]) -> list[Any]:
        values: list[Any] = []
        for name, _ in [*order, ("id", False)]:
            if name == "key":
                values.append([issue.project, int(issue.key.rsplit("-", 1)[1])])
            elif name in ("updated", "created", "resolved"):
                moment = {"updated": issue.updated, "created": issue.created, "resolved": issue.resolved}[name]
                values.append(_millis(moment) if moment else -1)
            elif name == "priority":
                values.append(int(issue.priority))
            elif name == "status":
                values.append(STATUSES[issue.status][0])
            else:
                values.append(issue.id)
        return values

    @staticmethod
    def _comparable(raw: list[Any], order: list[tuple[str, bool]]) -> tuple[Any, ...]:
        directions = [descending for _, descending in order] + [False]
        values = [tuple(value) if isinstance(value, list) else value for value in raw]
        return tuple(_Desc(value) if descending else value for value, descending in zip(values, directions, strict=True))

    def _sort_key(self, issue: _Issue, order: list[tuple[str, bool]]) -> tuple[Any, ...]:
        return self._comparable(self._raw_key(issue, order), order)

    def _token(self, digest: str, key: list[Any]) -> str:
        payload = json.dumps({"q": digest, "k": key, "t": int(self.now().timestamp())}, separators=(",", ":")).encode()
        check = hashlib.sha256(b"sandbox-token-salt" + payload).hexdigest()[:12].encode()
        return base64.urlsafe_b64encode(check + payload).decode().rstrip("=")

    def _read_token(self, token: str, digest: str) -> list[Any] | None:
        """The sort key a token resumes after; None when it is forged, expired, or for another query."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            check, payload = raw[:12], raw[12:]
            if hashlib.sha256(b"sandbox-token-salt" + payload).hexdigest()[:12].encode() != check:
                return None
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or data.get("q") != digest or not isinstance(data.get("k"), list):
            return None
        if self.now().timestamp() - float(data.get("t", 0)) > TOKEN_LIFE.total_seconds():
            return None
        key: list[Any] = data["k"]
        return key

    def endless_page(self, request: httpx.Request, path: str, query: Query) -> httpx.Response | None:
        """A search page that always says more follows, with a new token each time."""
        if path != "/rest/api/3/search/jql":
            return None
        self._endless += 1
        token = base64.urlsafe_b64encode(f"endless-{self._endless}".encode()).decode().rstrip("=")
        return json_response(200, {"issues": [], "nextPageToken": token, "isLast": False})

    # -- changelogs -----------------------------------------------------------------------

    def _changelog(self, issue: _Issue, query: Query) -> httpx.Response:
        try:
            start = max(0, self._int_param(query, "startAt", 0))
            size = max(1, min(self._int_param(query, "maxResults", CHANGELOG_CAP), CHANGELOG_CAP))
        except _BadRequest as bad:
            return self._error(400, [bad.message])
        histories = sorted(issue.histories, key=lambda h: (h.at, h.id))
        page = histories[start : start + size]
        last = start + size >= len(histories)
        payload: dict[str, Any] = {"self": self.link(f"/rest/api/3/issue/{issue.key}/changelog", {"startAt": start, "maxResults": size}),
                                   "maxResults": size, "startAt": start, "total": len(histories), "isLast": last,
                                   "values": [self._history_view(issue, h) for h in page]}
        if not last:
            payload["nextPage"] = self.link(f"/rest/api/3/issue/{issue.key}/changelog", {"startAt": start + size, "maxResults": size})
        return json_response(200, payload)

    def _bulk_changelog(self, body: Any) -> httpx.Response:
        """``POST /rest/api/3/changelog/bulkfetch``, validated as ``BulkChangelogRequestBean``."""
        problem = self._bulk_problem(body)
        if problem:
            return self._error(400, [problem])
        ids = body["issueIdsOrKeys"]
        field_ids = set(body["fieldIds"]) if body.get("fieldIds") else None
        size = body.get("maxResults", 1000)
        digest = hashlib.sha256(json.dumps([ids, sorted(field_ids or [])]).encode()).hexdigest()[:16]
        offset = 0
        if body.get("nextPageToken") is not None:
            after = self._read_token(body["nextPageToken"], digest)
            if after is None or len(after) != 1 or not isinstance(after[0], int):
                return self._error(400, ["The provided next page token is invalid or expired."])  # Assumption: wording
            offset = after[0]
        entries: list[tuple[datetime, int, _History]] = []
        for number in dict.fromkeys(n for n in (self.resolve(str(i)) for i in ids) if n is not None):  # Assumption: unknown ids skipped
            issue = self.issues[number]
            entries.extend((h.at, number, h) for h in issue.histories
                           if field_ids is None or any(item.get("fieldId") in field_ids for item in h.items))
        entries.sort(key=lambda entry: (entry[0], entry[1], entry[2].id))
        page = entries[offset : offset + size]
        grouped: dict[int, list[dict[str, Any]]] = {}
        for _, number, history in page:
            grouped.setdefault(number, []).append(self._history_view(self.issues[number], history, field_ids))
        payload: dict[str, Any] = {"issueChangeLogs": [{"issueId": str(number), "changeHistories": histories}
                                                       for number, histories in grouped.items()]}
        if offset + size < len(entries):
            payload["nextPageToken"] = self._token(digest, [offset + size])
        return json_response(200, payload)

    @staticmethod
    def _bulk_problem(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "The request body must be a JSON object."
        for name in body:
            if name not in ("issueIdsOrKeys", "fieldIds", "maxResults", "nextPageToken"):
                return f'Unrecognized field "{name}" (class BulkChangelogRequestBean), not marked as ignorable'
        ids = body.get("issueIdsOrKeys")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            return "issueIdsOrKeys must list at least one issue id or key."
        if len(ids) > 1000:
            return f"issueIdsOrKeys lists {len(ids)} issues; at most 1000 are allowed."
        fields = body.get("fieldIds", [])
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields) or len(set(fields)) != len(fields):
            return "fieldIds must be a list of distinct field ids."
        if len(fields) > 10:
            return f"fieldIds lists {len(fields)} fields; at most 10 are allowed."
        size = body.get("maxResults", 1000)
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 10000:
            return "maxResults must be between 1 and 10000."
        if body.get("nextPageToken") is not None and not isinstance(body["nextPageToken"], str):
            return "nextPageToken must be a string."
        return None

    # -- comments -------------------------------------------------------------------------

    def _list_comments(self, issue: _Issue, query: Query) -> httpx.Response:
        try:
            start = max(0, self._int_param(query, "startAt", 0))
            size = max(1, min(self._int_param(query, "maxResults", COMMENTS_CAP), COMMENTS_CAP))
        except _BadRequest as bad:
            return self._error(400, [bad.message])
        order = (query.get("orderBy") or ["created"])[0]
        if order not in ("created", "-created", "+created"):
            return self._error(400, [f"Ordering by '{order}' is not supported: order comments by created."])  # Assumption: wording
        comments = sorted(issue.comments, key=lambda c: (c.at, c.id), reverse=order == "-created")
        properties = "properties" in self._list_param(query.get("expand"))
        page = comments[start : start + size]
        return json_response(200, {"self": self.link(f"/rest/api/3/issue/{issue.id}/comment"), "startAt": start, "maxResults": size,
                                   "total": len(comments), "comments": [self._comment_view(issue, c, properties) for c in page]})

    def _add_comment(self, issue: _Issue, body: Any) -> httpx.Response:
        """Platform comment: an ADF body; internal only with the ``sd.public.comment`` property."""
        if not isinstance(body, dict) or "body" not in body:
            return self._error(400, [], {"comment": "Comment body can not be empty!"})
        if not _is_adf(body["body"]):
            return self._error(400, [], {"comment": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"})
        properties = body.get("properties") or []
        if not isinstance(properties, list):
            return self._error(400, ["properties must be a list of entity properties."])  # Assumption: wording
        internal = any(isinstance(p, dict) and p.get("key") == "sd.public.comment" and isinstance(p.get("value"), dict)
                       and p["value"].get("internal") in (True, "true") for p in properties)
        self._before_change(issue)
        text = _adf_text(body["body"])
        comment = self._comment(issue, self.bot, text, not internal, self.now(), adf=body["body"])
        self.api_comments.append({"issue": issue.id, "route": "platform", "public": not internal, "text": text})
        return json_response(201, self._comment_view(issue, comment, properties=True))

    def _request_comments(self, method: str, id_or_key: str, query: Query, body: Any) -> httpx.Response:
        number = self.resolve(id_or_key)
        if number is None:
            return self._jsm_error(404, "The request could not be found.", "sd.customerview.error.request.notfound")  # Assumption
        issue = self.issues[number]
        if not issue.request_type:
            return self._jsm_error(404, VP_ORIGIN_MISSING, "sd.customerview.error.vpOriginMissing")
        if method == "GET":
            return self._jsm_comments(issue, query)
        if method != "POST":
            return self._jsm_error(405, "Method not allowed", "sd.error.method")  # Assumption
        if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"].strip():
            return self._jsm_error(400, "The comment body is required.", "sd.comment.body.required")  # Assumption: wording
        if not isinstance(body.get("public"), bool):
            return self._jsm_error(400, "You must say whether the comment is public.", "sd.comment.public.required")  # Assumption
        if set(body) - {"body", "public"}:
            return self._jsm_error(400, f"Unrecognized field \"{sorted(set(body) - {'body', 'public'})[0]}\".", "sd.request.invalid")
        self._before_change(issue)
        comment = self._comment(issue, self.bot, body["body"], body["public"], self.now())
        self.api_comments.append({"issue": issue.id, "route": "servicedesk", "public": body["public"], "text": body["body"]})
        return json_response(201, self._jsm_comment_view(issue, comment))

    def _jsm_comments(self, issue: _Issue, query: Query) -> httpx.Response:
        try:
            start = max(0, self._int_param(query, "start", 0))
            limit = max(1, min(self._int_param(query, "limit", 50), 100))
        except _BadRequest as bad:
            return self._jsm_error(400, bad.message, "sd.request.invalid")
        public = (query.get("public") or ["true"])[0] != "false"
        internal = (query.get("internal") or ["true"])[0] != "false"
        comments = [c for c in issue.comments if (c.public and public) or (not c.public and internal)]
        page = comments[start : start + limit]
        base = self.link("/rest/servicedeskapi")
        links: dict[str, Any] = {"base": base, "context": "", "self": self.link(f"/rest/servicedeskapi/request/{issue.id}/comment",
                                                                                  {"start": start, "limit": limit})}
        if start + limit < len(comments):
            links["next"] = self.link(f"/rest/servicedeskapi/request/{issue.id}/comment", {"start": start + limit, "limit": limit})
        if start > 0:
            links["prev"] = self.link(f"/rest/servicedeskapi/request/{issue.id}/comment", {"start": max(0, start - limit), "limit": limit})
        return json_response(200, {"_expands": ["attachment", "renderedBody"], "size": len(page), "start": start, "limit": limit,
                                   "isLastPage": start + limit >= len(comments), "_links": links,
                                   "values": [self._jsm_comment_view(issue, c) for c in page]})

    # -- editing --------------------------------------------------------------------------

    def _settable(self) -> set[str]:
        return {"summary", "labels", "priority", "assignee", self.field_ids["service"], self.field_ids["sla_status"]} - self.screen_lacks

    def _edit(self, issue: _Issue, query: Query, body: Any) -> httpx.Response:
        if not isinstance(body, dict) or not body:
            return self._error(400, ["No content to map due to end-of-input"])
        fields, update = body.get("fields") or {}, body.get("update") or {}
        if not isinstance(fields, dict) or not isinstance(update, dict):
            return self._error(400, ["fields and update must be objects."])  # Assumption: wording
        errors: dict[str, str] = {}
        for name in sorted(set(fields) & set(update)):
            errors[name] = f"Field '{name}' cannot be set in both 'fields' and 'update'."  # Assumption: wording
        settable = self._settable()
        for name in sorted(set(fields) | set(update)):
            if name not in settable:
                errors[name] = NOT_ON_SCREEN.format(name)
        changes: dict[str, Any] = {}
        if not errors:
            changes = self._planned(issue, fields, update, errors)
        if errors:
            return self._error(400, [], errors)
        self._before_change(issue)
        moment = self.now()
        updated, first_new = issue.updated, self._next_history + 1
        for name, value in changes.items():
            if name == "labels":
                self._set_labels(issue, value, self.bot, moment)
            elif name == "priority":
                self._set_priority(issue, value, self.bot, moment)
            elif name == "assignee":
                self._set_assignee(issue, value, self.bot, moment)
            elif name == "summary":
                pass  # the summary is derived from the id here; accepted, not kept
            else:
                self._set_text(issue, "sla_status" if name == self.field_ids["sla_status"] else "service", value, self.bot, moment)
        new = [history for history in issue.histories if history.id >= first_new]
        if len(new) > 1:  # one edit is one history, its items one per field changed
            new[0].items = [item for history in new for item in history.items]
            issue.histories = [history for history in issue.histories if history not in new[1:]]
        if issue.updated != updated:
            notify = (query.get("notifyUsers") or ["true"])[0].lower() != "false"
            if notify or not self.admin:  # notifyUsers=false needs Administer Projects; silently ignored otherwise
                self.notifications += 1
        if (query.get("returnIssue") or ["false"])[0].lower() == "true":
            return json_response(200, self._issue_view(issue, ["*all"], set(), CHANGELOG_CAP))
        return httpx.Response(204)

    def _planned(self, issue: _Issue, fields: dict[str, Any], update: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
        """The new value of each field the edit touches, or an error naming the field."""
        planned: dict[str, Any] = {}
        for name, value in fields.items():
            planned[name] = self._value(name, value, issue, errors)
        for name, operations in update.items():
            if not isinstance(operations, list) or not all(isinstance(op, dict) and len(op) == 1 for op in operations):
                errors[name] = "Each update operation is an object with one verb, such as {\"add\": \"x\"}."  # Assumption: wording
                continue
            if name == "labels":
                labels = list(issue.labels)
                for operation in operations:
                    verb, value = next(iter(operation.items()))
                    if verb == "set":
                        labels = self._value("labels", value, issue, errors) or []
                    elif verb in ("add", "remove") and isinstance(value, str):
                        problem = self._label_problem(value)
                        if problem:
                            errors["labels"] = problem
                        elif verb == "add" and value not in labels:
                            labels.append(value)
                        elif verb == "remove":
                            labels = [label for label in labels if label != value]
                    else:
                        errors["labels"] = f"Operation '{verb}' with value {value!r} is not supported for labels."  # Assumption
                planned["labels"] = labels
            else:
                for operation in operations:
                    verb, value = next(iter(operation.items()))
                    if verb != "set":
                        errors[name] = f"Operation '{verb}' is not supported for field '{name}': use set."  # Assumption: wording
                    else:
                        planned[name] = self._value(name, value, issue, errors)
        return planned

    @staticmethod
    def _label_problem(label: str) -> str | None:
        if not label or " " in label:
            return f"The label '{label}' contains spaces which is invalid."
        if len(label) > 255:
            return "The label must not exceed 255 characters."
        return None

    def _value(self, name: str, value: Any, issue: _Issue, errors: dict[str, str]) -> Any:
        if name == "labels":
            if not isinstance(value, list) or not all(isinstance(label, str) for label in value):
                errors[name] = "Labels are a list of strings."  # Assumption: wording
                return None
            for label in value:
                problem = self._label_problem(label)
                if problem:
                    errors[name] = problem
            return list(value)
        if name == "priority":
            wanted = value.get("id") or value.get("name") if isinstance(value, dict) else None
            found = next((pid for pid, pname in PRIORITIES.items() if wanted in (pid, pname)), None)
            if found is None:
                errors[name] = f"The priority selected is invalid: {value!r}."  # Assumption: wording
            return found
        if name == "assignee":
            account = value.get("accountId") if isinstance(value, dict) else None if value is None else ""
            if account is not None and account not in self.accounts:
                errors[name] = f"User '{account}' cannot be assigned issues."
            return account
        if name == self.field_ids["service"]:
            if value is None:
                return None
            choice = value.get("value") or value.get("id") if isinstance(value, dict) else None
            options = {"email": "10100", "vpn": "10101", "printing": "10102"}
            found = next((option for option, oid in options.items() if choice in (option, oid)), None)
            if found is None:
                errors[name] = f"Option value '{choice}' is not valid"
            return found
        if name == self.field_ids["sla_status"]:
            if value is not None and not isinstance(value, str):
                errors[name] = "Operation value must be a string"
            elif isinstance(value, str) and len(value) > 255:
                errors[name] = "The entered text is too long. It exceeds the allowed limit of 255 characters."
            return value
        if not isinstance(value, str):
            errors[name] = "Operation value must be a string"
        return value

    # -- users, permissions, desks --------------------------------------------------------

    def _myself(self) -> dict[str, Any]:
        user = self._user(self.bot) or {}
        return {**user, "locale": "en_US" if self.language == "en" else self.language, "groups": {"size": 2, "items": []},
                "applicationRoles": {"size": 2, "items": []}, "expand": "groups,applicationRoles"}

    def _has(self, account_id: str, permission: str, project: str | None) -> bool:
        account = self.accounts[account_id]
        if permission == "SERVICEDESK_AGENT":
            return account.agent and account.kind == "atlassian"
        if permission == "ADMINISTER":
            return False  # the API user administers the projects (admin=True), never the whole site
        if permission == "ADMINISTER_PROJECTS":
            return account_id == self.bot and self.admin
        if account.kind == "customer":
            return False
        return account.agent or permission == "BROWSE_PROJECTS"

    def _my_permissions(self, query: Query) -> httpx.Response:
        keys = self._list_param(query.get("permissions"))
        if not keys:
            return self._error(400, ["The permissions query parameter is required."])  # Assumption: wording
        unknown = [key for key in keys if key not in PERMISSIONS]
        if unknown:
            return self._error(400, [f"Invalid permission key: {unknown[0]}"])  # Assumption: wording
        project = self._one(query, "projectKey")
        if project is not None and project not in PROJECTS:
            return self._error(404, [f"No project could be found with key '{project}'."])
        result = {}
        for key in keys:
            pid, name, kind = PERMISSIONS[key]
            result[key] = {"id": pid, "key": key, "name": name, "type": kind, "description": f"{name} permission.",
                           "havePermission": self._has(self.bot, key, project)}
        return json_response(200, {"permissions": result})

    def _permission_search(self, query: Query) -> httpx.Response:
        """Scans the users in ``[startAt, startAt + maxResults)``, a thousand at most, and returns
        those of them that hold every permission asked for (pages come back short)."""
        keys = self._list_param(query.get("permissions"))
        project = self._one(query, "projectKey")
        if not keys or (project is None and "issueKey" not in query):
            return self._error(400, ["The permissions and a projectKey or issueKey are required."])  # Assumption: wording
        if any(key not in PERMISSIONS for key in keys):
            return self._error(400, [f"Invalid permission key: {next(k for k in keys if k not in PERMISSIONS)}"])
        if project is not None and project not in PROJECTS:
            return self._error(404, [f"No project could be found with key '{project}'."])
        if not self.admin:
            return self._error(403, ["You don't have the permission to browse users for this project."])  # Assumption: wording
        try:
            start = max(0, self._int_param(query, "startAt", 0))
            size = max(0, min(self._int_param(query, "maxResults", 50), 1000))
        except _BadRequest as bad:
            return self._error(400, [bad.message])
        exact = self._one(query, "accountId")
        users = self.user_order  # Assumption: the site's own (seeded, stable) order of its users
        scanned = [users[index] for index in range(start, min(start + size, len(users)))]
        found = [uid for uid in scanned if all(self._has(uid, key, project) for key in keys) and (exact is None or uid == exact)]
        if exact is not None:
            found = [exact] if exact in self.accounts and all(self._has(exact, key, project) for key in keys) else []
        return json_response(200, [self._user(uid) for uid in found])

    def _service_desks(self, query: Query) -> httpx.Response:
        try:
            start = max(0, self._int_param(query, "start", 0))
            limit = max(1, min(self._int_param(query, "limit", 50), 100))
        except _BadRequest as bad:
            return self._jsm_error(400, bad.message, "sd.request.invalid")
        desks = [{"id": desk, "projectId": pid, "projectKey": key, "projectName": name,
                  "_links": {"self": self.link(f"/rest/servicedeskapi/servicedesk/{desk}")}} for key, (pid, name, desk) in PROJECTS.items()]
        page = desks[start : start + limit]
        links: dict[str, Any] = {"base": self.link("/rest/servicedeskapi"), "context": "",
                                 "self": self.link("/rest/servicedeskapi/servicedesk", {"start": start, "limit": limit})}
        if start + limit < len(desks):
            links["next"] = self.link("/rest/servicedeskapi/servicedesk", {"start": start + limit, "limit": limit})
        return json_response(200, {"_expands": [], "size": len(page), "start": start, "limit": limit,
                                   "isLastPage": start + limit >= len(desks), "_links": links, "values": page})

    # -- limits, faults, errors -----------------------------------------------------------

    def _written_issue(self, request: httpx.Request, path: str) -> int | None:
        match = re.fullmatch(r"/rest/api/3/issue/([^/]+)(?:/comment)?|/rest/servicedeskapi/request/([^/]+)/comment", path)
        if match is None or request.method not in ("PUT", "POST") or (request.method == "POST" and not path.endswith("/comment")):
            return None
        return self.resolve(match.group(1) or match.group(2))

    def limit(self, request: httpx.Request, path: str) -> httpx.Response | None:
        now = self.now().timestamp()
        if self.burst is not None:
            family = re.sub(r"/(issue|request)/[^/]+", r"/\1/{id}", path)
            window = self._bursts.setdefault((request.method, family), SlidingWindow(self.burst, 1.0))
            if window.full(now):
                return self._rate_limited("jira-burst-based", window, now)
            window.add(now)
        number = self._written_issue(request, path) if self.issue_writes is not None else None
        if number is not None and self.issue_writes is not None:
            window = self._issue_windows.setdefault(number, SlidingWindow(*self.issue_writes))
            if window.full(now):
                return self._rate_limited("jira-per-issue-on-write", window, now)
            window.add(now)
        return None

    def _rate_limited(self, reason: str, window: SlidingWindow, now: float) -> httpx.Response:
        wait = window.resets_in(now)
        reset = datetime.fromtimestamp(now + wait, UTC)
        headers = {"Retry-After": str(wait), "X-RateLimit-Limit": str(window.limit), "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": f"{reset:%Y-%m-%dT%H:%M}Z", "RateLimit-Reason": reason}
        return json_response(429, {"errorMessages": [RATE_LIMITED], "errors": {}, "status": 429}, headers)

    def error(self, status: int, headers: dict[str, str]) -> httpx.Response:
        if status == 429:
            extra = {"RateLimit-Reason": "jira-burst-based", "X-RateLimit-Remaining": "0", **headers}
            return json_response(429, {"errorMessages": [RATE_LIMITED], "errors": {}, "status": 429}, extra)
        return json_response(status, {"errorMessages": [f"Internal server error ({status})"], "errors": {}}, headers)


class _BadRequest(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message
