"""The pure parts behind tests/test_editor_plain_labels_browser.py: where a node added from the keyboard goes
(clear of every drawn node, inside the view while it has room), and the Settings page's words for each setting."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.editor.pages.settings import DERIVED, settings_rows
from sofiaflow.editor.pages.settings_text import SETTING_TEXT
from sofiaflow.editor.placement import GAP, box_at, clear_spot, overlaps
from sofiaflow.editor.properties.builders import legacy_val_type
from sofiaflow.runtime.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RAW_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$|SOFIAFLOW_|^[a-z]+[A-Z]\w*$")

boxes = st.lists(
    st.tuples(
        st.integers(-200, 1500), st.integers(-200, 1000), st.integers(100, 260), st.sampled_from([30, 45, 60])
    ).map(lambda t: box_at(t[0], t[1], t[2], t[3])),
    max_size=60,
)
areas = st.tuples(
    st.integers(-500, 500), st.integers(-500, 500), st.integers(0, 1600), st.integers(0, 900)
).map(lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))


@given(boxes, st.integers(100, 300), st.sampled_from([30, 45]), areas)
def test_a_keyboard_added_node_never_covers_another(taken, width, height, area):
    x, y = clear_spot(taken, width, height, area)
    spot = box_at(x, y, width, height)
    assert not [b for b in taken if overlaps(spot, b, GAP - 1)]


@given(st.integers(100, 300), areas.filter(lambda a: a[2] - a[0] >= 400 and a[3] - a[1] >= 200))
def test_on_an_empty_view_the_node_lands_at_its_top_left_inside_it(width, area):
    x, y = clear_spot([], width, 30, area)
    spot = box_at(x, y, width, 30)
    assert area[0] < spot[0] and spot[2] < area[2] and area[1] < spot[1] and spot[3] < area[3]
    assert spot[0] - area[0] <= 40 and spot[1] - area[1] <= 40


def test_nodes_added_one_after_another_go_down_a_column_then_to_the_next():
    area = (0, 0, 700, 200)
    taken: list = []
    spots = []
    for _ in range(9):
        x, y = clear_spot(taken, 120, 30, area)
        spots.append((x, y))
        taken.append(box_at(x, y, 120, 30))
    assert spots[:4] == [(90, 45), (90, 85), (90, 125), (90, 165)]
    assert spots[4] == (90 + 160, 45)
    assert len(set(spots)) == 9
    # a full view: below everything, still clear
    full = [box_at(x, y, 300, 30) for x in range(0, 800, 40) for y in range(0, 300, 20)]
    x, y = clear_spot(full, 120, 30, area)
    assert not [b for b in full if overlaps(box_at(x, y, 120, 30), b)] and y > 300


def test_every_setting_is_named_in_words_with_help(tmp_path):
    rows = settings_rows(Settings(data_dir=tmp_path))
    names = {f.name for f in dataclasses.fields(Settings)} | set(DERIVED)
    assert names <= set(SETTING_TEXT), f"settings without words: {sorted(names - set(SETTING_TEXT))}"
    for row in rows:
        assert not RAW_NAME.search(row["label"]), row
        assert row["help"].strip().endswith("."), row
    labels = [r["label"] for r in rows]
    assert len(labels) == len(set(labels))
    assert {r["name"]: r["value"] for r in rows}["exec_enabled"] == "no"


def test_the_help_names_only_variables_and_options_that_exist():
    """An environment variable or option a help line names is one the runtime reads."""
    source = (REPO / "runtime" / "settings.py").read_text() + (REPO / "runtime" / "cli.py").read_text()
    for name, (_label, text) in SETTING_TEXT.items():
        for variable in re.findall(r"SOFIAFLOW_[A-Z_]+", text):
            assert f'"{variable}"' in source, (name, variable)
        for option in re.findall(r"--[a-z-]+", text):
            assert f'"{option}"' in source, (name, option)


def test_a_legacy_val_kind_is_shown_as_what_the_trigger_sends():
    assert [legacy_val_type(v) for v in ("1", "", "hello", "true", "false", "null")] == [
        "str",
        "str",
        "str",
        "bool",
        "bool",
        "val",
    ]


def test_a_field_shown_by_a_typed_field_names_one_of_its_kinds():
    """A typed field gives `x-show-if` its kind (msg, seq, ...): a value that is not a kind hides the field for good."""
    from sofiaflow.editor.properties.schema import form_fields
    from sofiaflow.runtime.flows.registry import default_registry

    registry = default_registry()
    never = []
    for cls in registry.types():
        if cls.category == "internal":
            continue
        fields = form_fields(cls.type, cls.Config.model_json_schema())
        by_key = {f.key: f for f in fields}
        for spec in fields:
            for other, wanted in spec.show_if.items():
                typed = by_key.get(other)
                if typed is None or typed.widget != "typed" or not typed.types:
                    continue
                allowed = wanted if isinstance(wanted, list) else [wanted]
                if not any(a in typed.types for a in allowed):
                    never.append((cls.type, spec.key, other, wanted))
    assert not never, never


@given(st.datetimes(timezones=st.timezones()))
def test_a_time_is_shown_to_the_minute_in_utc(moment):
    from datetime import UTC

    from sofiaflow.editor.pages._format import when

    shown = when(moment.isoformat())
    assert shown == moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert when("2026-12-06T22:59:46.571889Z") == "2026-12-06 22:59 UTC"
    assert when("not a time") == "not a time" and when(None) == "–"


def test_schema_drafts_are_named_as_the_specification_does():
    from sofiaflow.editor.pages._format import schema_version

    assert [schema_version(d) for d in ("draft4", "draft7", "draft202012", "draft99")] == [
        "draft-04",
        "draft-07",
        "2020-12",
        "draft99",
    ]
