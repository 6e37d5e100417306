"""One source's surprise stays that source's: the others are pulled, evaluated and written to."""

from __future__ import annotations

from datetime import datetime, timezone

from bridge.config import load_config
from bridge.framework import registry
from bridge.pipeline.demo import source_table
from bridge.pipeline.run import PHASES, run_pipeline
from connectors.zendesk import ZendeskConnector
from connectors.zendesk.sandbox import ZendeskSandbox

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
POLICY = '[[policies]]\nname = "standard"\ntargets.first_response = { p1 = "1h", p2 = "4h", p3 = "8h", p4 = "24h" }\n'


class Surprised(ZendeskConnector):
    """A connector meeting an answer it did not expect, outside any record."""

    def streams(self):
        if self.name == "bad":
            raise TypeError("'NoneType' object is not subscriptable")
        return super().streams()


def test_an_unexpected_error_in_one_source_stops_that_source_only(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._registry, "zendesk", Surprised)
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    # Two helpdesks (two write-back targets may not be one helpdesk), each its own sandbox.
    boxes = {name: ZendeskSandbox(120, seed=11, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=100_000,
                                  account_limit_per_minute=100_000, subdomain=name) for name in ("bad", "good")}
    text = '[store]\npath = "store.db"\n' + POLICY + "".join(
        source_table(name, box.source_config(box.base_url, "ZD_TOKEN")) for name, box in boxes.items())
    (tmp_path / "c.toml").write_text(text)
    report = run_pipeline(load_config(tmp_path / "c.toml"), "sync", PHASES, store_path=tmp_path / "store.db", now=ANCHOR,
                          transports={name: box.transport() for name, box in boxes.items()})
    assert report.exit_code == 3 and report.failed == ["bad"]
    assert report.sources["bad"].error == ("source 'bad': unexpected TypeError: 'NoneType' object is not subscriptable "
                                           "(run with -v for the traceback)")
    assert report.sources["good"].tickets_pulled == 120 and report.sources["good"].writes_sent > 0
    assert boxes["bad"].writes() == 0
