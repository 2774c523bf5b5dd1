"""The request limits' JSON depth check against the depth of the parsed value, for any JSON text (strings full of
brackets, quotes and backslashes included)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.runtime.http.limits import json_depth

TRICKY = st.text(alphabet='[]{}"\\\\ax\n', max_size=8)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=25,
)


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(VALUES, st.integers(min_value=0, max_value=6), st.booleans())
def test_the_depth_check_agrees_with_the_parsed_value(value, limit, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert (json_depth(text, limit) > limit) == (depth_of(value) > limit), text


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"a": "[[[[[[[[", "b": ['\\"[[[[', "\\\\"], "c": [[1]]}).encode()
    assert (
        json_depth(text, 2) == json_depth(text, 3) == 3
    )  # {"c": [[1]]}; the strings' brackets are not counted
