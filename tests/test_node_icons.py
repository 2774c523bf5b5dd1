"""The icon table: every registered node type gets an icon, a class's own hint wins, unknown types fall back."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.editor.node_icons import BY_CATEGORY, BY_TYPE, DEFAULT_ICON, node_icon
from sofiaflow.editor.palette import palette_types
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry

LIGATURE = re.compile(r"^[a-z0-9_]+$")


def test_every_registered_type_resolves_to_an_icon_of_its_type_or_category():
    registry = default_registry()
    missing = []
    for entry in registry.describe():
        icon = node_icon(
            entry["type"], entry["category"], getattr(registry.find(entry["type"]), "icon", None)
        )
        assert LIGATURE.match(icon), (entry["type"], icon)
        if entry["type"] not in BY_TYPE and entry["category"] not in BY_CATEGORY:
            missing.append(entry["type"])
    assert not missing, f"types with neither a type nor a category icon: {missing}"


def test_the_core_types_have_the_icons_node_red_users_know():
    assert node_icon("inject", "common") == "arrow_forward"
    assert node_icon("debug", "common") == "bug_report"
    assert node_icon("function", "function") == "code"
    assert node_icon("mqtt in", "network") == "settings_input_antenna"
    assert node_icon("http request", "network") == "public"
    assert node_icon("change", "function") == "shuffle"
    assert node_icon("alarm", "cep") == "notifications"
    assert node_icon("ontology-insert", "ontology") == "storage"


def test_a_class_hint_wins_then_the_type_then_the_category_then_the_default():
    assert node_icon("inject", "common", "rocket_launch") == "rocket_launch"
    assert node_icon("my custom", "storage") == BY_CATEGORY["storage"]
    assert node_icon("my custom", "no such category") == DEFAULT_ICON
    assert node_icon("subflow:abc") == BY_CATEGORY["subflow"]


def test_the_palette_entries_carry_the_icon_and_a_node_class_may_set_its_own():
    registry = NodeRegistry()
    for cls in default_registry().types():
        registry.register(cls, default_registry().origin(cls.type))
    inject = registry.find("inject")
    hinted = type("HintedInject", (inject,), {"icon": "rocket_launch"})
    registry.register(hinted, "tests")
    types = palette_types(registry)
    assert types["inject"]["icon"] == "rocket_launch"
    assert types["debug"]["icon"] == "bug_report"
    assert all(LIGATURE.match(entry["icon"]) for entry in types.values())


@given(st.text(max_size=40), st.text(max_size=20))
def test_any_type_and_category_give_a_ligature_name(node_type, category):
    assert LIGATURE.match(node_icon(node_type, category))
