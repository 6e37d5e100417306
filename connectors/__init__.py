"""Connectors, one package per helpdesk, and the kit for building and testing them.

Each connector registers under its ``system`` name through the ``sla_bridge.connectors`` entry
point group (see ``pyproject.toml``); the core finds it there (:mod:`bridge.framework.registry`)
and never imports one by name. :mod:`connectors.kit` holds what every connector's sandbox and
tests share: the sandbox server, the story the sandboxes tell, and the conformance suite.
"""
