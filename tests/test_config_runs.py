"""A config that loads must run: what `check` accepts never fails a run for a reason the file holds.

Each case here passed `check` once and then failed every run (exit 1, some after pull and
evaluate) or did nothing and exited 0. Now each is exit 2, naming the file and the key, before
any request or write (no store is created).
"""

from __future__ import annotations

from pathlib import Path

import certifi
import pytest

from bridge.config import load_config
from bridge.errors import ConfigError
from tests.conftest import SOURCE as REMOTE_SOURCE
from tests.conftest import ZD_URL

# A loopback port nothing listens on: were a case to load after all, its run fails at once, offline.
SOURCE = REMOTE_SOURCE.replace(ZD_URL, "http://127.0.0.1:9")
TOKEN = {"ZD_TOKEN": "t0k3n-xyz"}
POLICY = '[[policies]]\nname = "gold"\n'
CREDITS = POLICY + 'targets.resolution = { p1 = "4h" }\n[policies.credits]\ncurrency = "GBP"\n'


def refused(run, path: Path, *command: str) -> str:
    """The problem lines of a command that must stop with exit 2 before any write."""
    result = run("--config", str(path), *(command or ("check",)), env=TOKEN)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: {path}: "), result.stderr
    assert "Traceback" not in result.stderr and "(run with -v for the traceback)" not in result.stderr
    assert not list(path.parent.glob("*.db")), "a store was created"
    return "\n".join(line.removeprefix("  - ") for line in result.stderr.splitlines())


# -- 1. a status field Zendesk has -------------------------------------------------------------


@pytest.mark.parametrize("field", ["custom_field:abc", "custom_field:\u0663\u0664", "custom_field:0123", "custom_field:1" + "0" * 20])
def test_a_status_field_that_is_no_zendesk_field_id_is_refused(write_config, run, field):
    path = write_config(SOURCE + f'writeback = {{ enabled = true, status_field = "{field}" }}\n')
    assert f"sources.zd.writeback.status_field: {field!r} is not a custom field" in refused(run, path, "sync")


def test_a_field_mapping_in_other_digits_is_refused(write_config, run):
    path = write_config(SOURCE + 'fields = { customer = "custom_field:\u0663" }\n')
    assert "sources.zd.fields.customer: 'custom_field:\u0663' is not a field" in refused(run, path)


# -- 2. every duration bounded -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (POLICY + 'targets.resolution = { p1 = "1000000h" }\n',
         "policies[0].targets.resolution.p1: '1000000h' is longer than 87600h, the longest allowed here "
         "(a target must be reached within 10 years of business time)"),
        ('[http]\ntimeout = "99999999999h"\n', "http.timeout: '99999999999h' is longer than 1h, the longest allowed here"),
        ('[http]\ntimeout = "9999999999999999999999h"\n', "http.timeout: '9999999999999999999999h' is far too long to be a duration"),
        ('[http]\nmax_wait = "48h"\n', "http.max_wait: '48h' is longer than 24h, the longest allowed here"),
        ("[http]\nmax_wait = inf\n", 'http.max_wait: inf has no unit: write it as a string with units, e.g. "30s"'),
        ('[http]\ndeadline = "2h"\n', "http.deadline: '2h' is longer than 1h, the longest allowed here"),
        ('[http]\ntimeout = "5m"\ndeadline = "1m"\n',
         "http.deadline: 1m is shorter than http.timeout (5m): the deadline bounds a whole request, so it must be "
         "at least the timeout of one read"),
        ('[http]\nmax_run = "30s"\n', "http.max_run: '30s' is shorter than 1m, the shortest allowed here"),
        ('[http]\nmax_run = "200h"\n', "http.max_run: '200h' is longer than 168h, the longest allowed here"),
        (CREDITS + 'monthly_fee = 100\nper_breach = [{ over = "1000000h", percent = 1 }]\n',
         "policies[0].credits.per_breach[0].over: '1000000h' is longer than 87600h, the longest allowed here"),
    ],
    ids=["target", "timeout", "timeout-digits", "max_wait", "max_wait-inf", "deadline", "deadline-below-timeout", "max_run-short",
         "max_run-long", "tier"],
)
def test_every_duration_is_bounded_to_what_runs(write_config, run, text, expected):
    path = write_config(SOURCE + text)
    assert expected in refused(run, path, "sync")


def test_a_target_its_calendar_takes_more_than_ten_years_to_reach_is_refused(write_config, run):
    # One working hour a week: 52h a year, so 600h would be due in more than a decade (and the
    # calendar gives up on a due instant 50 years out, failing every run that evaluates it).
    path = write_config(SOURCE + '[calendars.thin]\ntimezone = "UTC"\nhours = { mon = ["09:00-10:00"] }\n'
                        + POLICY + 'calendar = "thin"\ntargets.resolution = { p1 = "600h", p2 = "400h" }\n')
    problems = refused(run, path, "sync")
    assert "policies[0] (gold).targets.resolution.p1: 600h of business time would take more than 10 years to reach " in problems
    assert "on calendar 'thin' (52h of working time a year)" in problems or "on calendar 'thin' (53h of working time a year)" in problems
    assert "resolution.p2" not in problems


def test_a_calendar_without_hours_cannot_carry_a_target(write_config, run):
    path = write_config(SOURCE + '[calendars.never]\ntimezone = "UTC"\n' + POLICY + 'calendar = "never"\ntargets.resolution = { p1 = "1h" }\n')
    assert "policies[0] (gold).calendar: calendar 'never' has no working hours in the coming year" in refused(run, path)


def test_the_new_http_bounds_have_defaults_and_are_whole_seconds(write_config):
    http = load_config(write_config(SOURCE)).http
    assert (http.deadline, http.max_run, http.max_body_mb) == (120, 50 * 60, 64)
    http = load_config(write_config(SOURCE + '[http]\ndeadline = "10m"\nmax_run = "2h"\nmax_body_mb = 2048\n')).http
    assert (http.deadline, http.max_run, http.max_body_mb) == (600, 7200, 2048)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("0", "input should be greater than or equal to 1 (got 0)"),
        ("4096", "input should be less than or equal to 2048 (got 4096)"),
        ("true", "expected a whole number, got true"),
        ('"64"', "expected a whole number, got the text '64': write the number without quotes"),
    ],
)
def test_the_body_bound_is_a_whole_number_of_megabytes_within_reason(write_config, run, size, expected):
    path = write_config(SOURCE + f"[http]\nmax_body_mb = {size}\n")
    assert f"http.max_body_mb: {expected}" in refused(run, path)


# -- 3. a CA bundle that is one ----------------------------------------------------------------


def test_a_ca_bundle_that_is_not_pem_is_refused_at_load(write_config, run, tmp_path):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "corp.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    path = write_config(SOURCE + '[http]\nca_bundle = "certs/corp.pem"\n')
    assert (f"http.ca_bundle: {tmp_path / 'certs' / 'corp.pem'} is not a PEM file of CA certificates "
            "(a certificate in it cannot be read)") in refused(run, path, "sync")
    (tmp_path / "certs" / "corp.pem").write_text("just some text\n")
    assert "(it holds no certificate)" in refused(run, path)


def test_a_ca_bundle_that_is_a_folder_or_a_device_is_refused(write_config, run, tmp_path):
    (tmp_path / "certs").mkdir()
    path = write_config(SOURCE + '[http]\nca_bundle = "certs"\n')
    assert f"http.ca_bundle: {tmp_path / 'certs'} is not a regular file" in refused(run, path)
    path = write_config(SOURCE + '[http]\nca_bundle = "/dev/zero"\n')
    assert "http.ca_bundle: /dev/zero is not a regular file" in refused(run, path)


def test_a_real_ca_bundle_is_accepted_from_the_config_folder(write_config, tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "ca.pem").write_bytes(Path(certifi.where()).read_bytes())
    path = write_config(SOURCE + '[http]\nca_bundle = "ca.pem"\n', name="etc/sla.toml")
    monkeypatch.chdir("/")
    assert load_config(path).ca_bundle_path() == tmp_path / "etc" / "ca.pem"


# -- 4. finite numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CREDITS + "monthly_fee = inf\n", "policies[0].credits.monthly_fee: expected a finite number, got inf"),
        (CREDITS + "monthly_fee = nan\n", "policies[0].credits.monthly_fee: expected a finite number, got nan"),
        (CREDITS + "monthly_fee = 1e300\n", "policies[0].credits.monthly_fee: input should be less than or equal to 1000000000000"),
        (CREDITS + "monthly_fee = 1\ncap_percent = nan\n", "policies[0].credits.cap_percent: expected a finite number, got nan"),
        (CREDITS + 'monthly_fee = 1\nper_breach = [{ over = "0%", percent = nan }]\n',
         "policies[0].credits.per_breach[0].percent: expected a finite number, got nan"),
        (CREDITS + 'monthly_fee = 1\nper_breach = [{ over = "inf%", percent = 1 }]\n',
         "policies[0].credits.per_breach[0].over: 'inf%' is not a percentage of the target"),
        (CREDITS + 'monthly_fee = 1\nper_breach = [{ over = "nan%", percent = 1 }]\n',
         "policies[0].credits.per_breach[0].over: 'nan%' is not a percentage of the target"),
        (CREDITS + "monthly_fee = 1\nsuccess_rate = [{ below = nan, percent = 5 }]\n",
         "policies[0].credits.success_rate[0].below: expected a finite number, got nan"),
        (CREDITS + "monthly_fee = 1\n[policies.credits.availability]\ncommitment = nan\n",
         "policies[0].credits.availability.commitment: expected a finite number, got nan"),
        (POLICY + 'targets.resolution = { p1 = "4h" }\nwarn_at = nan\n', "policies[0].warn_at: expected a finite number, got nan"),
    ],
    ids=["fee-inf", "fee-nan", "fee-huge", "cap", "tier-percent", "over-inf", "over-nan", "success", "availability", "warn_at"],
)
def test_every_number_in_the_terms_is_finite(write_config, run, text, expected):
    path = write_config(SOURCE + text)
    assert expected in refused(run, path, "sync")


# -- 5. a history start the store can keep -------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ('"0001-01-01"', "sources.zd.start: 0001-01-01 is before 1970-01-01, where the helpdesks' exports begin"),
        ("1969-12-31", "sources.zd.start: 1969-12-31 is before 1970-01-01"),
        ('"1970-01-01T00:30:00+01:00"', "sources.zd.start: 1970-01-01T00:30:00+01:00 is before 1970-01-01"),
        ('"0001-01-01T00:00:00+01:00"', "sources.zd.start: 0001-01-01T00:00:00+01:00 is before 1970-01-01"),
        ('"9999-12-31T23:59:59-12:00"', "sources.zd.start: 9999-12-31T23:59:59-12:00 is in the future"),
        ('"2999-01-01"', "sources.zd.start: 2999-01-01 is in the future"),
    ],
)
def test_a_history_start_before_the_epoch_or_after_now_is_refused(write_config, run, start, expected):
    path = write_config(SOURCE + f"start = {start}\n")
    assert expected in refused(run, path, "sync")


def test_the_epoch_itself_is_a_valid_start(write_config):
    assert str(load_config(write_config(SOURCE + "start = 1970-01-01\n")).sources["zd"].start) == "1970-01-01"


# -- 6. no sources ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["sync", "pull", "push", "check"])
@pytest.mark.parametrize("text", ["", '[store]\npath = "s.db"\n', POLICY + 'targets.resolution = { p1 = "4h" }\n'],
                         ids=["empty", "store-only", "policy-only"])
def test_a_config_without_sources_says_so_and_runs_nothing(write_config, run, command, text):
    path = write_config(text)
    problems = refused(run, path, command)
    assert "no sources are configured: add a [sources.NAME] table for each helpdesk" in problems


def test_require_sources_names_the_file(write_config):
    config = load_config(write_config(""))
    with pytest.raises(ConfigError) as caught:
        config.require_sources()
    assert str(caught.value).startswith(f"{config.path}: no sources are configured")


# -- 7. a file that is not a config ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (bytes(range(256)) * 4, "a binary file, not a TOML text"),
        ('[store]\npath = "caf\u00e9.db"\n'.encode("latin-1"), "not UTF-8 text (byte 0xe9 on line 2)"),
        (b"a = " + b"[" * 10_000 + b"]" * 10_000 + b"\n", "nested too deeply to read"),
        (b"[" + b".".join([b"a"] * 10_000) + b"]\n", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a...: nested more than 24 levels deep"),
        (b"a = " + b"[" * 200 + b"]" * 200 + b"\n", "a[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]...: nested more"),
        (b"x = 1\n" * 1_000_000, "larger than 4 MB, which no config is"),
    ],
    ids=["binary", "latin-1", "deep-arrays", "deep-tables", "arrays-pydantic-would-recurse-into", "huge"],
)
def test_a_file_that_cannot_be_a_config_is_one_clear_line(tmp_path, run, content, expected):
    path = tmp_path / "sla-bridge.toml"
    path.write_bytes(content)
    assert expected in refused(run, path, "sync")


def test_a_byte_order_mark_is_allowed(tmp_path):
    path = tmp_path / "sla-bridge.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SOURCE.encode())
    assert list(load_config(path).sources) == ["zd"]


def test_a_deeply_nested_value_in_the_environment_is_a_config_error(write_config, run):
    path = write_config(SOURCE)
    result = run("--config", str(path), "check", env={**TOKEN, "SLA_BRIDGE_HTTP": "[" * 100_000})
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {path}: environment: "), result.stderr


def test_a_config_path_that_is_a_folder_says_so(run, tmp_path):
    result = run("check", env={"SLA_BRIDGE_CONFIG": str(tmp_path)})
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path} (from $SLA_BRIDGE_CONFIG) is a folder; give the path of the TOML config file\n"


# -- 8. a store that can be a store ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('""', 'store.path: empty path: give a file name, e.g. "sla-bridge.db"'),
        ('"   "', "store.path: empty path"),
        ('"data"', "store.path: {tmp}/data is a folder; name the store's file in it, e.g. {tmp}/data/sla-bridge.db"),
        ('"/dev/null"', "store.path: /dev/null is not a regular file (a device, FIFO or socket)"),
        ('"notes.txt/store.db"', "store.path: {tmp}/notes.txt is not a folder, so {tmp}/notes.txt/store.db cannot be created"),
        ('"a\\u0000b.db"', "store.path: a path may not contain a NUL character"),
    ],
    ids=["empty", "blank", "folder", "dev-null", "under-a-file", "nul"],
)
def test_a_store_path_that_cannot_be_a_store_is_refused_naming_the_key(write_config, run, tmp_path, value, expected):
    (tmp_path / "data").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    path = write_config(SOURCE + f"[store]\npath = {value}\n")
    assert expected.format(tmp=tmp_path) in refused(run, path, "sync")


def test_a_store_path_from_the_environment_is_checked_and_named(write_config, run, tmp_path):
    path = write_config(SOURCE)
    result = run("--config", str(path), "sync", env={**TOKEN, "SLA_BRIDGE_STORE__PATH": str(tmp_path)})
    assert result.exit_code == 2
    assert f"store.path: {tmp_path} is a folder" in result.stderr
    assert "(set by the environment variable SLA_BRIDGE_STORE__PATH)" in result.stderr


def test_a_db_option_that_is_a_device_is_refused_naming_the_option(write_config, run, tmp_path):
    path = write_config(SOURCE)
    result = run("--config", str(path), "--db", "/dev/null", "sync", env=TOKEN)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: --db: /dev/null is not a regular file"), result.stderr


# -- 9. business hours said once ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('hours = { mon = ["09:00-17:00", "12:00-18:00"] }',
         "calendars.office.hours: mon: '09:00-17:00' and '12:00-18:00' overlap; give each stretch of working time once"),
        ('hours = { tue = ["09:00-17:00", "09:00-17:00"] }',
         "calendars.office.hours: tue: '09:00-17:00' is given twice; give each working interval once"),
        ('hours = { fri = ["22:00-06:00"], sat = ["05:00-09:00"] }',
         "calendars.office.hours: sat: '05:00-09:00' overlaps the overnight shift fri '22:00-06:00'"),
        ('hours = { sun = ["20:00-08:00"], mon = ["07:00-17:00"] }',
         "calendars.office.hours: mon: '07:00-17:00' overlaps the overnight shift sun '20:00-08:00'"),
        ('overrides = { "2026-12-23" = ["09:00-13:00", "10:00-11:00"] }',
         "calendars.office.overrides: 2026-12-23: '09:00-13:00' and '10:00-11:00' overlap"),
        ('hours = { tue = ["20:00-04:00"] }\noverrides = { "2026-12-23" = ["03:00-05:00"] }',
         "calendars.office.overrides: 2026-12-23: '03:00-05:00' overlaps the overnight shift 2026-12-22 '20:00-04:00'"),
        ('hours = { thu = ["02:00-05:00"] }\noverrides = { "2026-12-23" = ["23:00-03:00"] }',
         "calendars.office.overrides: 2026-12-24: '02:00-05:00' overlaps the overnight shift 2026-12-23 '23:00-03:00'"),
    ],
    ids=["overlap", "duplicate", "overnight", "overnight-across-the-week", "override", "into-override", "out-of-override"],
)
def test_overlapping_or_repeated_hours_are_refused_naming_the_calendar(write_config, run, table, expected):
    path = write_config(SOURCE + f'[calendars.office]\ntimezone = "UTC"\n{table}\n')
    assert expected in refused(run, path)


def test_overrides_at_the_ends_of_the_calendar_are_checked_without_overflowing(write_config, run):
    path = write_config(SOURCE + '[calendars.office]\ntimezone = "UTC"\n'
                        'overrides = { "9999-12-31" = ["22:00-06:00"], "0001-01-01" = ["09:00-10:00", "09:30-11:00"] }\n')
    assert "calendars.office.overrides: 0001-01-01: '09:00-10:00' and '09:30-11:00' overlap" in refused(run, path)


def test_hours_that_touch_or_follow_a_holiday_are_fine(write_config):
    path = write_config(SOURCE + '[calendars.office]\ntimezone = "UTC"\n'
                        'hours = { mon = ["09:00-12:00", "12:00-17:00"], tue = ["22:00-06:00"], wed = ["06:00-12:00"] }\n'
                        'holidays = ["2026-12-22"]\noverrides = { "2026-12-23" = ["03:00-05:00"] }\n')
    assert load_config(path).calendars["office"].hours["mon"] == ["09:00-12:00", "12:00-17:00"]


# -- 10. a number is a number ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (POLICY + 'targets.resolution = { p1 = "4h" }\nwarn_at = "0.5"\n',
         "policies[0].warn_at: expected a number, got the text '0.5': write the number without quotes"),
        (POLICY + 'targets.resolution = { p1 = "4h" }\nwarn_at = true\n', "policies[0].warn_at: expected a number, got true"),
        (POLICY + 'targets.resolution = { p1 = "4h" }\nbreach_on_equal = 1\n', "policies[0].breach_on_equal: input should be a valid boolean"),
        (CREDITS + 'monthly_fee = "12000"\n', "policies[0].credits.monthly_fee: expected a number, got the text '12000'"),
        (CREDITS + 'monthly_fee = 1\ncap_percent = "20"\n', "policies[0].credits.cap_percent: expected a number, got the text '20'"),
        ('[http]\nmax_attempts = "5"\n', "http.max_attempts: expected a whole number, got the text '5'"),
        ("[http]\nmax_attempts = true\n", "http.max_attempts: expected a whole number, got true"),
        ("[http]\nmax_pages = 10.5\n", "http.max_pages: expected a whole number, got 10.5"),
    ],
    ids=["warn_at-text", "warn_at-bool", "bool-number", "fee-text", "percent-text", "attempts-text", "attempts-bool", "pages-float"],
)
def test_numbers_in_the_file_are_numbers(write_config, run, text, expected):
    path = write_config(SOURCE + text)
    assert expected in refused(run, path)


def test_numbers_from_the_environment_are_read_from_their_text(write_config, monkeypatch):
    path = write_config(SOURCE)
    monkeypatch.setenv("SLA_BRIDGE_HTTP__MAX_ATTEMPTS", "7")
    monkeypatch.setenv("SLA_BRIDGE_HTTP__MAX_BODY_MB", " 128 ")
    monkeypatch.setenv("SLA_BRIDGE_HTTP__MAX_RUN", "2h")
    http = load_config(path).http
    assert (http.max_attempts, http.max_body_mb, http.max_run) == (7, 128, 7200)
    monkeypatch.setenv("SLA_BRIDGE_HTTP__MAX_ATTEMPTS", "7.5")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        "http.max_attempts: expected a whole number, got the text '7.5' (set by the environment variable SLA_BRIDGE_HTTP__MAX_ATTEMPTS)"
    ]


# -- 12. found while trying: more of the same ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ('{ email = "bot@acme.example\\r\\nX-Injected: 1", token_env = "ZD_TOKEN" }',
         "sources.zd.auth.email: must be a non-empty name without control characters"),
        ('{ email = "bot@acme.example", token_env = "" }', "sources.zd.auth.token_env: '' is not an environment variable name"),
        ('{ email = "bot@acme.example", token_env = "ZD TOKEN" }', "sources.zd.auth.token_env: 'ZD TOKEN' is not an environment variable name"),
        ('{ email = "bot@acme.example", token_file = "" }', "sources.zd.auth.token_file: must be the path of a file"),
    ],
    ids=["header-injection", "empty-env", "env-with-space", "empty-file"],
)
def test_credentials_keys_that_could_never_be_read_are_refused(write_config, run, auth, expected):
    path = write_config(SOURCE.replace('auth = { email = "bot@acme.example", token_env = "ZD_TOKEN" }', f"auth = {auth}"))
    assert expected in refused(run, path)


@pytest.mark.parametrize(
    "text",
    [
        f'[http]\ntimeout = "{"x" * 5000}"\n',
        f'[calendars.office]\ntimezone = "{"x" * 5000}"\n',  # an OSError (file name too long) before
        f'[store]\npath = "{"x" * 5000}.db"\n',
        POLICY + f'targets.resolution = {{ p1 = "4h" }}\ncalendar = "{"x" * 5000}"\n',
        SOURCE.replace('"zendesk"', f'"{"x" * 5000}"'),
    ],
    ids=["duration", "timezone", "store", "calendar-reference", "literal"],
)
def test_a_long_value_is_one_short_line(write_config, run, text):
    path = write_config((SOURCE if "sources" not in text else "") + text)
    problems = refused(run, path)
    assert all(len(line) < 600 for line in problems.splitlines()), problems


@pytest.mark.parametrize(
    ("timeout", "deadline"),
    [("5s", 30), ("1s", 30), ("10s", 40), ("30s", 120), ("5m", 1200), ("15m", 3600), ("1h", 3600)],
)
def test_a_deadline_left_unset_follows_the_timeout(write_config, timeout, deadline):
    # 4 x timeout, at least 30s, at most 1h: a short timeout no longer keeps the 2m deadline, so a
    # server trickling under a 5s timeout is cut after 30s, not 2m, on each attempt.
    assert load_config(write_config(SOURCE + f'[http]\ntimeout = "{timeout}"\n')).http.deadline == deadline


def test_a_deadline_left_unset_follows_a_timeout_from_the_environment(write_config, monkeypatch):
    monkeypatch.setenv("SLA_BRIDGE_HTTP__TIMEOUT", "5s")
    assert load_config(write_config(SOURCE)).http.deadline == 30


def test_a_deadline_set_is_kept_and_the_defaults_are_unchanged(write_config, run):
    assert load_config(write_config(SOURCE)).http.deadline == 120
    assert load_config(write_config(SOURCE + '[http]\ntimeout = "5s"\ndeadline = "10m"\n')).http.deadline == 600
    assert refused(run, write_config(SOURCE + '[http]\ntimeout = "2h"\n')).count("\n") == 0  # one problem, the timeout's


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:99999", "sources.zd.url: 'http://127.0.0.1:99999' is not a URL: its port is not a number from 1 to 65535"),
        ("https://acme.zendesk.com:0", "sources.zd.url: 'https://acme.zendesk.com:0' is not a URL: its port"),
        ("https://acme .zendesk.com", "sources.zd.url: 'https://acme .zendesk.com' is not a URL: it holds a space or a control character"),
        ("https://acme.zendesk.com/agent", "sources.zd.url: 'https://acme.zendesk.com/agent': give the account's URL without a path"),
    ],
    ids=["port-too-big", "port-zero", "space", "zendesk-path"],
)
def test_a_url_no_request_could_use_is_refused(write_config, run, url, expected):
    path = write_config(SOURCE.replace("http://127.0.0.1:9", url))
    assert expected in refused(run, path, "sync")


def test_a_store_path_naming_a_file_that_is_no_store_is_refused(write_config, run, tmp_path):
    path = write_config(SOURCE + '[store]\npath = "sla-bridge.toml"\n')
    result = run("--config", str(path), "sync", env=TOKEN)
    assert result.exit_code == 2
    assert f"store.path: {path} exists and is not an SQLite database, so it is not a store" in result.stderr
    assert path.read_text().startswith("\n[sources.zd]")


def test_an_empty_or_real_store_file_is_accepted(write_config, tmp_path):
    import sqlite3

    (tmp_path / "empty.db").touch()
    assert load_config(write_config(SOURCE + '[store]\npath = "empty.db"\n')).store_path() == tmp_path / "empty.db"
    sqlite3.connect(tmp_path / "real.db").execute("CREATE TABLE t (x)").connection.commit()
    assert load_config(write_config(SOURCE + '[store]\npath = "real.db"\n')).store_path() == tmp_path / "real.db"


def test_two_sources_may_not_both_write_back_to_one_helpdesk(write_config, run):
    one = SOURCE + "writeback = { enabled = true }\n"
    two = one.replace("[sources.zd]", "[sources.zd-again]").replace("http://127.0.0.1:9", "http://127.0.0.1:9/")
    path = write_config(one + two)
    assert ("sources.zd-again.writeback.enabled: sources.zd writes back to the same helpdesk (http://127.0.0.1:9); each "
            "would post its own notes and set its own tags on the same tickets") in refused(run, path, "sync")
    reading = write_config(one + two.replace("enabled = true", "enabled = false"))
    assert sorted(load_config(reading).sources) == ["zd", "zd-again"]
