"""One registry of systems: entry points, explicit registration, and a plug-in that is broken."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from bridge.config import load_config
from bridge.errors import ConfigError, ConnectorUnavailable
from bridge.framework import registry
from connectors.zendesk import ZendeskConnector


def test_the_built_in_connector_comes_from_its_entry_point(monkeypatch):
    monkeypatch.setattr(registry, "_registry", {})  # nothing imported yet
    assert {"zendesk", "jira", "servicenow"} <= set(registry.systems())
    assert registry.connector_class("zendesk") is ZendeskConnector
    assert registry.connector_class("jira").__name__ == "JiraConnector"
    assert registry.sandbox_systems() == ["jira", "servicenow", "zendesk"]


def test_an_unknown_system_names_the_ones_there_are():
    with pytest.raises(ConnectorUnavailable, match=r"no connector for system 'freshdesk' \(available: jira, servicenow, zendesk\)"):
        registry.connector_class("freshdesk", source="fd")


@pytest.mark.parametrize(("value", "why"), [
    ("connectors.nowhere:Connector", "cannot be loaded: ModuleNotFoundError"),
    ("connectors.zendesk:ZendeskSourceConfig", "is not a connector for 'acme'"),
])
def test_a_broken_plug_in_is_refused_and_the_others_still_load(monkeypatch, value, why):
    declared = {"acme": EntryPoint("acme", value, registry.ENTRY_POINT_GROUP),
                "zendesk": EntryPoint("zendesk", "connectors.zendesk:ZendeskConnector", registry.ENTRY_POINT_GROUP)}
    monkeypatch.setattr(registry, "_declared", lambda: declared)
    monkeypatch.setattr(registry, "_registry", {})
    with pytest.raises(ConnectorUnavailable, match=why):
        registry.connector_class("acme")
    assert registry.connector_class("zendesk") is ZendeskConnector
    assert registry.sandbox_systems() == ["zendesk"]  # the broken one is left out, not fatal


def test_a_source_is_validated_by_its_own_connectors_model():
    with pytest.raises(ConfigError) as caught:
        load_config(data={"sources": {"zd": {
            "system": "zendesk", "url": "https://a.zendesk.com", "auth": {"oauth_token_env": "T"},
            "writeback": {"status_field": "sla_status"}, "projects": ["SUP"]}}}, environ=False)
    problems = caught.value.problems
    assert ("sources.zd.writeback.status_field: 'sla_status' is not a custom field: write \"custom_field:ID\" "
            "(the ID from `sla-bridge fields SOURCE`)") in problems
    assert any(p.startswith("sources.zd.projects: unknown key 'projects'") for p in problems)


def test_write_back_keys_must_fit_what_the_helpdesk_can_write(monkeypatch):
    from bridge.framework import WriteCapabilities

    class ReadOnly(ZendeskConnector):
        writes = WriteCapabilities(status_field=True)

    monkeypatch.setitem(registry._registry, "zendesk", ReadOnly)
    table = {"system": "zendesk", "url": "https://a.zendesk.com", "auth": {"oauth_token_env": "T"}}
    unset = load_config(data={"sources": {"zd": table}}, environ=False).sources["zd"].writeback
    assert (unset.tags, unset.notes) == (False, False)  # unset: follows what the helpdesk can do
    with pytest.raises(ConfigError) as caught:
        load_config(data={"sources": {"zd": {**table, "writeback": {"tags": True, "notes": True}}}}, environ=False)
    assert caught.value.problems == [
        "sources.zd.writeback.tags: Zendesk Support tickets have no tags sla-bridge can set; set tags = false or remove the key",
        "sources.zd.writeback.notes: sla-bridge cannot add internal notes on Zendesk Support; set notes = false or remove the key",
    ]
