"""The wheel works on its own: built from the sources, installed into a fresh virtual environment, run as a server.

The venv sees the third-party packages already installed here (a path file lists a folder of links to them),
but nothing of this environment's editable `sofiaflow`: no finder, no metadata, no source folder, so every
`sofiaflow` module it imports comes from the wheel. `python-editor` is installed beside it because it ships a
top-level `editor` module, the name the editor had before it moved under `sofiaflow`. The server runs from a
directory outside the repository. It builds, installs and starts real servers: seconds here, up to a minute on CI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from ports import free_port

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("runtime", "nodes", "editor", "flows", "ontologies")
"""The source folders that install as sofiaflow.<folder> (setup.py); package/ is the top package itself."""
BUILD_FILES = ("pyproject.toml", "setup.py", "README.md")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")
PASSWORD = "wheel-test-password"
START_TIMEOUT = 60.0


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure the assertion shows its output."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, **kwargs)
    assert done.returncode == 0, (
        f"{args} exited with {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def source_files() -> set[str]:
    """Every file of the source folders, as its path inside the wheel (sofiaflow/...)."""
    names = {"sofiaflow/__init__.py"}
    for folder in FOLDERS:
        for file in (REPO / folder).rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                names.add(f"sofiaflow/{file.relative_to(REPO).as_posix()}")
    return names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (a build/ folder left in the repository cannot leak in)."""
    source = tmp_path_factory.mktemp("source")
    for folder in FOLDERS + ("package",):
        shutil.copytree(REPO / folder, source / folder, ignore=SKIPPED)
    for name in BUILD_FILES:
        shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheelhouse")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ]
    )
    (built,) = out.glob("sofiaflow-*.whl")
    return built


def dependency_links(folder: Path) -> Path:
    """A folder of links to what this environment's site-packages hold, without sofiaflow's own install.

    Left out: sofiaflow's metadata and editable finder, and every .pth file (a folder reached through a path
    file is a plain sys.path entry: its .pth files never run)."""
    folder.mkdir()
    sites = [Path(p) for p in site.getsitepackages()]
    if site.ENABLE_USER_SITE and site.getusersitepackages() in sys.path:
        sites.append(Path(site.getusersitepackages()))
    for site_dir in sites:
        for entry in site_dir.iterdir() if site_dir.is_dir() else ():
            name = entry.name.lower()
            if name.startswith(("sofiaflow", "__editable__", "_sofiaflow")) or name.endswith(
                (".pth", ".egg-link")
            ):
                continue
            if not (folder / entry.name).exists():
                (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (its bin/ folder) with the wheel and python-editor installed, reusing the dependencies."""
    root = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", str(root / "env")])
    python = root / "env" / "bin" / "python"
    purelib = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    links = dependency_links(root / "dependencies")
    (Path(purelib) / "sofiaflow_test_dependencies.pth").write_text(f"{links}\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q"]
    run(install + [str(wheel)])
    editor = subprocess.run(install + ["python-editor"], capture_output=True, text=True, timeout=240)
    if editor.returncode != 0:
        message = f"cannot install python-editor from the package index: {editor.stderr[-1000:]}"
        if os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return python.parent


def test_the_wheel_holds_sofiaflow_only_and_every_source_file(wheel: Path):
    names = wheel_names(wheel)
    tops = {name.split("/")[0] for name in names}
    assert tops == {"sofiaflow", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    missing = source_files() - names
    assert not missing, f"left out of the wheel: {sorted(missing)}"
    assert "sofiaflow/flows/iot-broker.json" in names
    assert any(n.startswith("sofiaflow/ontologies/") and n.endswith(".json") for n in names)
    assert {"sofiaflow/editor/canvas/canvas.js", "sofiaflow/editor/canvas/canvas.css"} <= names


def test_the_wheel_declares_only_sofiaflow_names(wheel: Path):
    """top_level.txt says `sofiaflow`, and every entry point (node types, the editor app) resolves inside it."""
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(info).decode()
        top_level = archive.read(info.replace("entry_points.txt", "top_level.txt")).decode().split()
    assert top_level == ["sofiaflow"]
    targets = [line.split("=", 1)[1].strip() for line in entry_points.splitlines() if "=" in line]
    assert targets and all(t.startswith("sofiaflow.") for t in targets), targets


# Run inside the venv: where each module comes from, and whether the entry points load.
PROBE = r"""
import importlib, importlib.metadata as md, json, pkgutil, sys
import editor, sofiaflow
modules, failed = {}, {}
for info in pkgutil.walk_packages(sofiaflow.__path__, "sofiaflow."):
    try:
        modules[info.name] = importlib.import_module(info.name).__file__
    except Exception as exc:
        failed[info.name] = repr(exc)
entry_points = {}
for group in ("sofiaflow.nodes", "sofiaflow.apps"):
    for ep in md.entry_points(group=group):
        try:
            entry_points[ep.value] = ep.load().__module__
        except Exception as exc:
            failed[ep.value] = repr(exc)
print(json.dumps({
    "editor": editor.__file__, "editor_has_edit": hasattr(editor, "edit"), "top": sofiaflow.__file__,
    "version": sofiaflow.__version__, "metadata": str(md.distribution("sofiaflow").locate_file("")),
    "finders": [repr(f) for f in sys.meta_path], "modules": modules, "failed": failed,
    "entry_points": entry_points,
}))
"""


def test_every_module_imports_from_the_wheel_beside_python_editor(venv: Path, tmp_path: Path):
    done = run([str(venv / "python"), "-c", PROBE], cwd=tmp_path, env=clean_env())
    probe = json.loads(done.stdout.splitlines()[-1])
    site_packages = str(Path(probe["top"]).parents[1])
    assert site_packages.startswith(str(venv.parent)), probe["top"]
    assert probe["metadata"] == site_packages and probe["version"] != "0+unknown"
    assert not any("editable" in f.lower() for f in probe["finders"]), probe["finders"]
    assert probe["editor"].startswith(site_packages) and probe["editor_has_edit"], probe["editor"]
    assert not probe["failed"], probe["failed"]
    outside = {m: f for m, f in probe["modules"].items() if not f.startswith(site_packages)}
    assert not outside, outside
    expected = {
        n[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        for n in source_files()
        if n.endswith(".py") and n != "sofiaflow/__init__.py"
    }
    assert expected <= set(probe["modules"]), sorted(expected - set(probe["modules"]))
    assert probe["entry_points"]["sofiaflow.editor:mount_editor"] == "sofiaflow.editor"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without sofiaflow settings, PYTHONPATH or an active venv."""
    drop = ("SOFIAFLOW_", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)} | extra


@pytest.fixture()
def server(venv: Path, tmp_path: Path) -> Iterator[tuple[httpx.Client, int, int]]:
    """`sofiaflow run` from the venv, from a folder outside the repository, on free loopback ports:
    (an admin API client, the embedded broker's port, the server's pid)."""
    port, mqtt_port = free_port(), free_port()
    cwd, data_dir = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    assert REPO not in cwd.resolve().parents
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed once the process has it
    args = [str(venv / "sofiaflow"), "run", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--mqtt-port", str(mqtt_port), "--data-dir", str(data_dir)]
    env = clean_env(SOFIAFLOW_ADMIN_PASSWORD=PASSWORD, HOME=str(tmp_path))
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, f"exited with {proc.returncode}: {read_log(tmp_path)}"
            try:
                httpx.get(f"{base}/auth/login", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"no answer in {START_TIMEOUT}s: {read_log(tmp_path)}"
                time.sleep(0.2)
        form = {"client_id": "node-red-admin", "grant_type": "password", "scope": "*"}
        token = httpx.post(
            f"{base}/auth/token", data=form | {"username": "admin", "password": PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            yield client, mqtt_port, proc.pid
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
    assert proc.returncode == 0, f"stopped with {proc.returncode}: {read_log(tmp_path)}"


def read_log(folder: Path) -> str:
    return (folder / "server.log").read_text(errors="replace")[-4000:]


def shipped(wheel: Path, folder: str) -> list:
    """The JSON documents the wheel ships in sofiaflow/<folder>/."""
    with zipfile.ZipFile(wheel) as archive:
        return [
            json.loads(archive.read(n))
            for n in archive.namelist()
            if n.startswith(f"sofiaflow/{folder}/") and n.endswith(".json")
        ]


def test_the_installed_server_deploys_the_iot_broker_flow_and_loads_the_ontologies(server, wheel: Path):
    client, mqtt_port, _ = server
    flows = client.get("/flows", headers={"Node-RED-API-Version": "v2"}).raise_for_status().json()["flows"]
    (iot_broker,) = [
        flow for flow in shipped(wheel, "flows") if any(n.get("type") == "ssap-broker" for n in flow)
    ]
    assert {n["id"] for n in iot_broker} <= {n["id"] for n in flows}
    assert {"ssap-broker", "ssap-mqtt in", "ssap-rest in", "ssap process"} <= {n["type"] for n in flows}

    names = {o["name"] for o in client.get("/ontologies").raise_for_status().json()}
    shipped_names = {o["name"] for o in shipped(wheel, "ontologies")}
    assert len(shipped_names) >= 5 and shipped_names <= names, names

    assert client.get("/editor/login").status_code == 200  # the editor app came in through its entry point
    with socket.create_connection(("127.0.0.1", mqtt_port), timeout=5):
        pass  # the embedded broker listens


def test_a_python_function_in_its_sandbox_worker_stores_a_row(server, venv: Path):
    """inject -> python function -> ontology-insert: the worker process (`python -I -m
    sofiaflow.runtime.sandbox.worker`) runs from the venv too, and the row reaches the real-time DB."""
    client, _, pid = server
    body = "msg['payload'] = {'BasicSensor': {'assetId': 'wheel-' + str(2 + 3), 'measure': 21.5}}\nreturn msg"
    tab = {
        "label": "wheel check",
        "nodes": [
            {"id": "in1", "type": "inject", "once": True, "onceDelay": 0.1, "wires": [["fn1"]]},
            {"id": "fn1", "type": "python function", "func": body, "wires": [["ins1"]]},
            {"id": "ins1", "type": "ontology-insert", "ontology": "BasicSensor", "wires": []},
        ],
    }
    client.post("/flow", json=tab).raise_for_status()
    query = {"filter": json.dumps({"BasicSensor.assetId": "wheel-5"})}
    deadline = time.monotonic() + 30
    while True:
        found = client.get("/ontologies/BasicSensor/data", params=query).raise_for_status().json()
        if found["total"]:
            break
        assert time.monotonic() < deadline, "the row did not arrive"
        time.sleep(0.2)
    assert found["items"][0]["BasicSensor"]["measure"] == 21.5
    workers = [
        child.cmdline()
        for child in psutil.Process(pid).children()
        if "sofiaflow.runtime.sandbox.worker" in child.cmdline()
    ]
    assert workers and workers[0][0].startswith(str(venv.parent)), workers  # the venv's python ran the body
