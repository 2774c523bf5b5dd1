"""file node (write, append, delete) and file in node (utf8, buffer, lines, stream), in a real tmp folder."""

from __future__ import annotations

import os

import pytest

from sofiaflow.nodes.storage.file_in import CHUNK
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def file_node(**props) -> dict:
    base = {
        "id": "w",
        "type": "file",
        "z": "t1",
        "name": "",
        "filename": "out.txt",
        "filenameType": "str",
        "appendNewline": True,
        "createDir": False,
        "overwriteFile": "false",
        "encoding": "none",
        "wires": [[]],
    }
    return {**base, **props}


def file_in(**props) -> dict:
    base = {
        "id": "r",
        "type": "file in",
        "z": "t1",
        "name": "",
        "filename": "out.txt",
        "filenameType": "str",
        "format": "utf8",
        "chunk": False,
        "sendError": False,
        "encoding": "none",
        "allProps": False,
        "wires": [[]],
    }
    return {**base, **props}


async def run(registry, root, nodes, msgs, target):
    async with FlowTester([TAB, *nodes], registry) as t:
        t.engine.node_settings["filesDir"] = str(root)
        for m in msgs:
            t.inject(target, m)
            await t.idle()
        return t


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


# ----- file ----------------------------------------------------------------------------------------------


async def test_append_adds_newlines_and_passes_the_msg_on(registry, root):
    t = await run(
        registry, root, [file_node()], [{"payload": "a"}, {"payload": 2}, {"payload": {"k": [1]}}], "w"
    )
    assert (root / "out.txt").read_text() == 'a\n2\n{"k":[1]}\n'
    assert [m["filename"] for m in t.outputs("w")[0]] == ["out.txt"] * 3
    assert not t.errors()


async def test_overwrite_keeps_only_the_last_payload_and_buffers_get_no_newline(registry, root):
    await run(
        registry,
        root,
        [file_node(overwriteFile="true")],
        [{"payload": "first"}, {"payload": b"\x00\xff"}],
        "w",
    )
    assert (root / "out.txt").read_bytes() == b"\x00\xff"


async def test_last_part_of_a_string_sequence_gets_no_newline(registry, root):
    parts = [{"payload": s, "parts": {"type": "string", "index": i, "count": 2}} for i, s in enumerate("xy")]
    await run(registry, root, [file_node()], parts, "w")
    assert (root / "out.txt").read_text() == "x\ny"


async def test_filename_from_msg_and_create_dir(registry, root):
    node = file_node(filename="filename", filenameType="msg", createDir=True, appendNewline=False)
    t = await run(registry, root, [node], [{"payload": "deep", "filename": "a/b/c.txt"}], "w")
    assert (root / "a/b/c.txt").read_text() == "deep"
    assert t.outputs("w")[0][0]["filename"] == "a/b/c.txt"


async def test_legacy_empty_filename_means_msg_filename(registry, root):
    node = file_node(filename="", filenameType="")
    await run(registry, root, [node], [{"payload": "v", "filename": "legacy.txt"}], "w")
    assert (root / "legacy.txt").read_text() == "v\n"


async def test_missing_folder_without_create_dir_is_an_error(registry, root):
    t = await run(registry, root, [file_node(filename="no/such.txt")], [{"payload": "v"}], "w")
    assert not (root / "no").exists()
    assert t.outputs("w")[0] == []
    assert "failed to append to file" in t.errors()[0]["msg"] and "ENOENT" in t.errors()[0]["msg"]


async def test_delete_removes_the_file(registry, root):
    (root / "gone.txt").write_text("x")
    t = await run(
        registry, root, [file_node(filename="gone.txt", overwriteFile="delete")], [{"payload": 1}], "w"
    )
    assert not (root / "gone.txt").exists()
    assert len(t.outputs("w")[0]) == 1
    t = await run(
        registry, root, [file_node(filename="gone.txt", overwriteFile="delete")], [{"payload": 1}], "w"
    )
    assert t.outputs("w")[0] == [] and "failed to delete file" in t.errors()[0]["msg"]


async def test_no_filename_warns_and_sends_nothing(registry, root):
    node = file_node(filename="filename", filenameType="msg")
    t = await run(registry, root, [node], [{"payload": "v"}], "w")
    assert t.outputs("w")[0] == [] and any("No filename" in str(e.get("msg")) for e in t.logs)


async def test_no_payload_writes_nothing(registry, root):
    t = await run(registry, root, [file_node()], [{"topic": "x"}], "w")
    assert not (root / "out.txt").exists() and t.outputs("w")[0] == []


async def test_encodings(registry, root):
    await run(registry, root, [file_node(encoding="latin1", appendNewline=False)], [{"payload": "é"}], "w")
    assert (root / "out.txt").read_bytes() == b"\xe9"
    node = file_node(filename="m.txt", encoding="setbymsg", appendNewline=False)
    await run(registry, root, [node], [{"payload": "é", "encoding": "utf16le"}], "w")
    assert (root / "m.txt").read_bytes() == "é".encode("utf-16-le")


async def test_bad_config_refuses_the_deploy(registry, root):
    for bad in (file_node(encoding="klingon"), file_node(overwriteFile="sometimes")):
        with pytest.raises(FlowValidationError, match="encoding|overwriteFile"):
            await run(registry, root, [bad], [], "w")


async def test_the_files_folder_is_created_on_first_write(registry, tmp_path):
    fresh = tmp_path / "not-yet"
    await run(registry, fresh, [file_node()], [{"payload": "v"}], "w")
    assert (fresh / "out.txt").read_text() == "v\n"


# ----- file in -------------------------------------------------------------------------------------------


async def test_read_utf8_and_buffer(registry, root):
    (root / "out.txt").write_bytes("héllo\n".encode())
    t = await run(
        registry, root, [file_in(), file_in(id="b", format="")], [{"payload": None, "topic": "t"}], "r"
    )
    msg = t.outputs("r")[0][0]
    assert msg["payload"] == "héllo\n" and msg["filename"] == "out.txt" and msg["topic"] == "t"
    t = await run(registry, root, [file_in(format="")], [{}], "r")
    assert t.outputs("r")[0][0]["payload"] == "héllo\n".encode()


async def test_read_lines_as_a_sequence(registry, root):
    (root / "out.txt").write_text("a\nb\n")
    t = await run(registry, root, [file_in(format="lines")], [{"topic": "t", "other": 1}], "r")
    out = t.outputs("r")[0]
    assert [m["payload"] for m in out] == ["a", "b", ""]
    assert [m["parts"].get("count") for m in out] == [None, None, 3]
    assert all(m["topic"] == "t" and "other" not in m and m["parts"]["ch"] == "\n" for m in out)
    t = await run(registry, root, [file_in(format="lines", allProps=True)], [{"other": 1}], "r")
    assert all(m["other"] == 1 for m in t.outputs("r")[0])


async def test_read_stream_in_chunks(registry, root):
    (root / "out.txt").write_bytes(b"x" * (CHUNK + 10))
    t = await run(registry, root, [file_in(format="stream")], [{}], "r")
    out = t.outputs("r")[0]
    assert [len(m["payload"]) for m in out] == [CHUNK, 10]
    assert out[1]["parts"] == {
        "index": 1,
        "count": 2,
        "ch": "",
        "type": "buffer",
        "id": out[1]["parts"]["id"],
    }
    (root / "out.txt").write_bytes(b"x" * CHUNK)
    t = await run(registry, root, [file_in(format="stream")], [{}], "r")
    out = t.outputs("r")[0]
    assert len(out) == 2 and "payload" not in out[1] and out[1]["parts"]["count"] == 1


async def test_missing_file_is_an_error_and_with_send_error_the_msg_goes_on(registry, root):
    t = await run(registry, root, [file_in(filename="none.txt")], [{"payload": "p"}], "r")
    assert t.outputs("r")[0] == [] and "ENOENT" in t.errors()[0]["msg"]
    t = await run(registry, root, [file_in(filename="none.txt", sendError=True)], [{"payload": "p"}], "r")
    out = t.outputs("r")[0][0]
    assert "payload" not in out and out["error"]["code"] == "ENOENT"


async def test_filename_from_msg_loses_tabs_and_newlines(registry, root):
    (root / "x.txt").write_text("X")
    node = file_in(filename="filename", filenameType="msg")
    t = await run(registry, root, [node], [{"filename": "x.txt\n"}], "r")
    assert t.outputs("r")[0][0]["payload"] == "X"


async def test_write_then_read_back_through_a_flow(registry, root):
    nodes = [
        file_node(overwriteFile="true", wires=[["a"]]),
        file_node(id="a", wires=[["r"]]),
        file_in(),
    ]
    t = await run(registry, root, nodes, [{"payload": "one"}], "w")
    assert t.payloads("r") == ["one\none\n"]
    assert os.listdir(root) == ["out.txt"]
