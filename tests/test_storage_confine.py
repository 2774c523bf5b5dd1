"""The storage nodes never read, change or create anything outside the files folder, whatever the name."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.storage import confine
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
SECRET = "TOP-SECRET"


def layout(base: Path) -> tuple[Path, Path]:
    """base/files (the folder) with symlinks leading out and in; base/outside holding a planted secret."""
    root, outside = base / "files", base / "outside"
    for folder in (root / "sub", outside / "deeper"):
        folder.mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET)
    (outside / "deeper" / "secret.txt").write_text(SECRET)
    (root / "sub" / "mine.txt").write_text("mine")
    (root / "out_dir").symlink_to(outside)
    (root / "out_file").symlink_to(outside / "secret.txt")
    (root / "sub" / "up").symlink_to("../../outside")
    (root / "in_dir").symlink_to(root / "sub")
    (root / "loop").symlink_to("loop")
    return root, outside


def snapshot(base: Path, root: Path) -> dict[str, bytes | str]:
    """Every entry under `base` outside `root`: file contents, link targets, folders."""
    seen: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(base):
        if Path(folder) == root or root in Path(folder).parents:
            dirs[:] = []
            continue
        for name in dirs + files:
            path = Path(folder) / name
            if path == root:
                continue
            seen[str(path)] = (
                "link:" + os.readlink(path)
                if path.is_symlink()
                else "dir"
                if path.is_dir()
                else path.read_bytes()
            )
    return seen


COMPONENTS = st.sampled_from(
    ["..", ".", "", "outside", "secret.txt", "out_dir", "out_file", "in_dir", "sub", "up", "mine.txt", "loop",
     "deeper", "%2e%2e", "%2F", "..%2f", "files", "new.txt", "é", "日本", "\u202e", "..\\..", "~"]
)  # fmt: skip


def names(base: Path):
    relative = st.lists(st.one_of(COMPONENTS, st.text(min_size=1, max_size=4)), min_size=1, max_size=6).map(
        "/".join
    )
    prefixes = st.sampled_from(
        ["", "/", str(base) + "/", str(base / "files") + "/", str(base / "outside") + "/"]
    )
    return st.tuples(prefixes, relative).map("".join)


def flow(name: str) -> list[dict]:
    common = {"z": "t1", "name": "", "filenameType": "msg", "filename": "filename", "encoding": "none"}
    writer = {"appendNewline": False, "createDir": True, "wires": [[]], **common}
    reader = {"format": "utf8", "chunk": False, "sendError": True, "allProps": False, "wires": [[]], **common}
    return [
        TAB,
        {"id": "w", "type": "file", "overwriteFile": "true", **writer},
        {"id": "a", "type": "file", "overwriteFile": "false", **writer},
        {"id": "d", "type": "file", "overwriteFile": "delete", **writer},
        {"id": "r", "type": "file in", **reader},
        {"id": "b", "type": "file in", **{**reader, "format": "lines"}},
    ]


async def exercise(root: Path, name: str) -> list:
    async with FlowTester(flow(name)) as t:
        t.engine.node_settings["filesDir"] = str(root)
        for node in ("r", "b", "w", "a", "r", "d"):
            t.inject(node, {"payload": "overwritten", "filename": name})
            await t.idle()
        return [m for port in (t.outputs("r") + t.outputs("b")) for m in port]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_names_never_touch_anything_outside(tmp_path_factory, data):
    base = tmp_path_factory.mktemp("confine")
    root, outside = layout(base)
    before = snapshot(base, root)
    name = data.draw(names(base), label="filename")
    read = asyncio.run(exercise(root, name))
    assert snapshot(base, root) == before
    assert not any(SECRET in str(m.get("payload")) for m in read)
    assert (outside / "secret.txt").read_text() == SECRET


@pytest.mark.parametrize(
    "name",
    ["../outside/secret.txt", "out_file", "out_dir/secret.txt", "sub/up/secret.txt", "in_dir/up/deeper/secret.txt",
     "{base}/outside/secret.txt", "/etc/passwd", "sub/../../outside/secret.txt"],
)  # fmt: skip
def test_names_leading_out_are_refused_with_a_clear_error(tmp_path, name):
    root, _ = layout(tmp_path)
    with pytest.raises(confine.PathRefused, match="leads outside the files folder"):
        confine.resolve(str(root.resolve()), name.format(base=tmp_path))


@pytest.mark.parametrize(
    "name,inside",
    [("sub/mine.txt", "sub/mine.txt"), ("in_dir/mine.txt", "sub/mine.txt"), ("%2e%2e", "%2e%2e"),
     ("a/../sub/./mine.txt", "sub/mine.txt"), ("{root}/sub/mine.txt", "sub/mine.txt"), ("日本/é.txt", "日本/é.txt")],
)  # fmt: skip
def test_names_inside_resolve_inside(tmp_path, name, inside):
    root, _ = layout(tmp_path)
    real = str(root.resolve())
    assert confine.resolve(real, name.format(root=root)) == os.path.join(real, inside)


def test_refused_names_reach_catch_nodes_and_inside_names_work(tmp_path):
    root, _ = layout(tmp_path)

    async def scenario():
        async with FlowTester(flow("")) as t:
            t.engine.node_settings["filesDir"] = str(root)
            t.inject("w", {"payload": "x", "filename": "../outside/secret.txt"})
            t.inject("w", {"payload": "x", "filename": "in_dir/new/made.txt"})
            await t.idle()
            return t.errors(), t.outputs("w")[0]

    errors, sent = asyncio.run(scenario())
    assert len(errors) == 1 and "leads outside the files folder" in errors[0]["msg"]
    assert [m["filename"] for m in sent] == ["in_dir/new/made.txt"]
    assert (root / "sub" / "new" / "made.txt").read_text() == "x"


def test_a_symlink_planted_after_the_check_is_not_followed(tmp_path):
    root, outside = layout(tmp_path)
    real_root = str(root.resolve())
    target = confine.resolve(real_root, "later/secret.txt")  # "later" does not exist yet: resolves inside
    (root / "later").symlink_to(outside)
    with pytest.raises(OSError):
        with confine.open_file(real_root, target, os.O_RDONLY):
            pass
    assert (outside / "secret.txt").read_text() == SECRET


def test_a_watch_outside_refuses_the_deploy(tmp_path):
    root, _ = layout(tmp_path)

    async def scenario():
        flows = [
            TAB,
            {
                "id": "x",
                "type": "watch",
                "z": "t1",
                "files": "sub, ../outside",
                "recursive": "",
                "wires": [[]],
            },
        ]
        tester = FlowTester(flows)
        tester.engine.node_settings["filesDir"] = str(root)
        async with tester:
            pass

    with pytest.raises(FlowValidationError, match="leads outside the files folder"):
        asyncio.run(scenario())


def test_the_files_folder_setting_reaches_nodes(tmp_path, monkeypatch):
    from sofiaflow.runtime.settings import Settings

    monkeypatch.delenv(confine.ENV, raising=False)
    assert Settings(data_dir=tmp_path).node_settings()["filesDir"] == str(tmp_path / "files")
    monkeypatch.setenv(confine.ENV, str(tmp_path / "elsewhere"))
    assert Settings(data_dir=tmp_path).node_settings()["filesDir"] == str(tmp_path / "elsewhere")


def test_without_a_setting_the_environment_names_the_folder_and_without_both_it_is_an_error(
    tmp_path, monkeypatch
):
    root, _ = layout(tmp_path)
    monkeypatch.setenv(confine.ENV, str(root))

    async def scenario():
        async with FlowTester(flow("")) as t:
            t.inject("w", {"payload": "x", "filename": "env.txt"})
            await t.idle()
            return t.errors()

    assert asyncio.run(scenario()) == [] and (root / "env.txt").read_text() == "x"
    monkeypatch.delenv(confine.ENV)
    errors = asyncio.run(scenario())
    assert "no files folder is configured" in errors[0]["msg"]
