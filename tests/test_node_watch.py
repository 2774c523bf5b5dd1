"""watch node: real file-system changes in a tmp folder become messages (bounded waits for the OS's events)."""

from __future__ import annotations

import asyncio

import pytest

from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
WAIT = 10.0  # seconds at most for the OS to report a change


def watch(files: str, recursive=False) -> dict:
    return {
        "id": "w",
        "type": "watch",
        "z": "t1",
        "name": "",
        "files": files,
        "recursive": recursive,
        "wires": [[]],
    }


async def started(root, node) -> FlowTester:
    t = FlowTester([TAB, node])
    t.engine.node_settings["filesDir"] = str(root)
    await t.__aenter__()
    return t


async def until(t: FlowTester, predicate, poke=None) -> list[dict]:
    """The watch node's messages once one satisfies `predicate` (bounded wait). `poke` makes the change, and
    makes it again every half second, in case the OS watch was not yet in place the first time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    next_poke = loop.time()
    while loop.time() < deadline:
        if poke is not None and loop.time() >= next_poke:
            poke()
            next_poke = loop.time() + 0.5
        out = t.outputs("w")[0] if t.outputs("w") else []
        if any(predicate(m) for m in out):
            return list(out)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no such change reported in {WAIT}s: {t.outputs('w')}, errors {t.errors()}")


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "files"
    (folder / "dir" / "sub").mkdir(parents=True)
    return folder


async def test_files_created_changed_and_removed_in_a_folder(root):
    t = await started(root, watch("dir"))
    try:
        out = await until(
            t,
            lambda m: m["filename"] == "dir/a.txt" and m.get("size") == 5,
            lambda: (root / "dir" / "a.txt").write_text("12345"),
        )
        msg = next(m for m in out if m["filename"] == "dir/a.txt")
        assert msg["payload"] == "dir/a.txt" and msg["file"] == "a.txt" and msg["topic"] == "dir"
        assert msg["event"] == "update" and msg["type"] == "file"
        (root / "dir" / "a.txt").unlink()
        out = await until(t, lambda m: m["event"] == "remove")
        assert next(m for m in out if m["event"] == "remove")["type"] == "none"
    finally:
        await t.__aexit__(None, None, None)


async def test_recursive_reports_changes_in_sub_folders_and_topic_lists_names(root):
    (root / "other.txt").write_text("")
    t = await started(root, watch("dir, other.txt", recursive="true"))
    try:
        out = await until(
            t,
            lambda m: m["filename"] == "dir/sub/deep.txt",
            lambda: (root / "dir" / "sub" / "deep.txt").write_text("x"),
        )
        assert out[0]["topic"] == '["dir","other.txt"]'
    finally:
        await t.__aexit__(None, None, None)


async def test_changes_through_a_symlink_leading_outside_are_not_reported(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "dir" / "link").symlink_to(outside)
    t = await started(root, watch("dir", recursive=True))
    try:

        def change_outside_then_inside():
            (outside / "secret.txt").write_text("s")
            (root / "dir" / "sentinel.txt").write_text("x")

        out = await until(t, lambda m: m["file"] == "sentinel.txt", change_outside_then_inside)
        assert not any("secret" in m["filename"] for m in out)
    finally:
        await t.__aexit__(None, None, None)


async def test_a_missing_name_is_reported_as_an_error(root):
    t = await started(root, watch("nowhere"))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not t.errors() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert "cannot watch nowhere" in t.errors()[0]["msg"]
    finally:
        await t.__aexit__(None, None, None)
