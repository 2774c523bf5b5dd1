"""What the command line deploys (`sofiaflow run --flows FILE`) is the platform's: its tabs get no owner, so its
nodes act as administrators' (no tenant), as the ownership model says for flows deployed from the command line."""

from __future__ import annotations

from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.server import import_flows_file
from sofiaflow.runtime.settings import Settings

FLOWS = """[{"id": "t1", "type": "tab", "label": "from a file"},
 {"id": "j1", "type": "junction", "z": "t1", "wires": [[]]}]"""


async def test_a_flow_file_deployed_at_start_has_no_owner_and_no_tenant(tmp_path):
    path = tmp_path / "flows.json"
    path.write_text(FLOWS, encoding="utf-8")
    runtime = Runtime(
        Settings(data_dir=tmp_path / "data", mqtt_port=0, ontologies_dir=None, default_flows=None)
    )
    await runtime.start()
    try:
        assert await import_flows_file(runtime, path) is not None
        assert runtime.ownership.sharing("t1")["owner"] is None
        node = runtime.engine.nodes["j1"]
        assert node.owner is None and node.tenant is None
    finally:
        await runtime.stop()
