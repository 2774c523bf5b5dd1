"""Late imports (runtime/lazy_imports.py): packages whose `__init__` only re-exports load each name on first use,
deferred modules run on first use, and a real `sofiaflow run` with the editor keeps the heavy modules it does not
need out of its memory after an editor page load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from editor_server import free_port
from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.runtime import lazy_imports
from sofiaflow.runtime.lazy_imports import LateImports, _exports

REPO = Path(__file__).resolve().parents[1]

# what the idle server with the editor must not have run (each checked to be installed below)
NOT_AT_IDLE = (
    "requests",  # python-socketio's and python-engineio's clients
    "aiohttp",
    "redis",  # python-socketio's managers, NiceGUI's redis storage (cluster mode loads it for real)
    "redis.asyncio",
    "httpx",  # the http request node, until a request is sent
    "rich",  # httpx's command line
    "pygments",
    "engineio.client",
    "socketio.client",
    "cryptography",  # node credentials, while there are none to decrypt or encrypt
    "prometheus_client",  # GET /metrics, until scraped
    "lark",  # the cep query node's parser, until a query is deployed
    "aiomqtt",  # the MQTT nodes' MQTT 5 and websocket client
    "paho.mqtt.client",
    "dns",  # paho's client's
)


# ----- the parsing of an __init__ ------------------------------------------------------------------------------

_ident = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s not in {"import", "from"})


@given(st.dictionaries(_ident, st.lists(_ident, min_size=1, max_size=3, unique=True), min_size=1, max_size=5))
def test_reexports_map_each_name_to_its_submodule(modules: dict[str, list[str]]) -> None:
    source = '"""doc"""\n' + "".join(
        f"from .{mod} import {', '.join(names)}\n" for mod, names in modules.items()
    )
    source += f"__all__ = {sorted({n for names in modules.values() for n in names})!r}\n"
    expected = {name: (f"pkg.{mod}", name, False) for mod, names in modules.items() for name in names}
    assert _exports(source, "pkg") == expected


def test_optional_reexport_and_alias() -> None:
    source = textwrap.dedent(
        """
        from .a import A as B
        try:
            from .t import handler
        except ImportError:  # pragma: no cover
            handler = None
        """
    )
    assert _exports(source, "p") == {"B": ("p.a", "A", False), "handler": ("p.t", "handler", True)}


@pytest.mark.parametrize(
    "source",
    [
        "import os\n",
        "from . import a\n",  # a submodule, not a name in it
        "from .a import *\n",
        "from os import path\n",
        "X = 1\n",
        "from .a import A\nprint('side effect')\n",
        "try:\n    from .a import A\nexcept Exception:\n    A = None\n",
        "try:\n    from .a import A\nexcept ImportError:\n    A = 1\n",
        "def (:\n",
    ],
)
def test_anything_more_than_reexports_runs_as_usual(source: str) -> None:
    assert _exports(source, "p") is None


# ----- packages and modules on disk ------------------------------------------------------------------------------


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh package name on sys.path each test; the finder and the modules are removed afterwards."""
    name = f"lazypkg_{os.getpid()}_{time.monotonic_ns()}"
    monkeypatch.syspath_prepend(str(tmp_path))
    finders: list[LateImports] = []

    def make(files: dict[str, str], lazy_init=(), deferred=(), alone=()) -> str:
        for rel, text in files.items():
            path = tmp_path / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        finder = LateImports(
            [name + p for p in lazy_init], [name + p for p in deferred], [name + p for p in alone]
        )
        sys.meta_path.insert(0, finder)
        finders.append(finder)
        return name

    yield make
    for finder in finders:
        sys.meta_path.remove(finder)
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]
    sys.modules.pop("lazy_trace", None)


TRACE = "import lazy_trace\nlazy_trace.ran.append(__name__)\n"


def _trace() -> list[str]:
    import types

    mod = sys.modules.setdefault("lazy_trace", types.ModuleType("lazy_trace"))
    mod.ran = getattr(mod, "ran", [])  # type: ignore[attr-defined]
    return mod.ran  # type: ignore[attr-defined]


def test_lazy_init_package_imports_a_submodule_on_first_use(tree) -> None:
    ran = _trace()
    name = tree(
        {
            "__init__.py": "from .client import Client\nfrom .server import Server\n"
            "try:\n    from .missing import Gone\nexcept ImportError:\n    Gone = None\n"
            "__all__ = ['Client', 'Server']\n",
            "client.py": TRACE + "class Client: pass\n",
            "server.py": TRACE + "class Server: pass\n",
            "exceptions.py": TRACE + "class Oops(Exception): pass\n",
        },
        lazy_init=[""],
    )
    pkg = __import__(name)
    assert ran == []
    assert pkg.Server.__module__ == f"{name}.server"
    assert ran == [f"{name}.server"]
    assert f"{name}.client" not in sys.modules
    assert pkg.Client.__name__ == "Client" and ran[-1] == f"{name}.client"
    assert pkg.Gone is None  # optional, as the try/except ImportError said
    assert pkg.exceptions.Oops.__name__ == "Oops"  # a submodule the plain __init__ would have loaded
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        pkg.nothing  # noqa: B018
    assert {"Client", "Server"} <= set(dir(pkg))


def test_lazy_init_package_with_more_than_reexports_runs_at_once(tree) -> None:
    ran = _trace()
    name = tree({"__init__.py": TRACE + "from .a import A\n", "a.py": "A = 1\n"}, lazy_init=[""])
    pkg = __import__(name)
    assert ran == [name] and pkg.A == 1


def test_deferred_module_runs_on_first_use(tree) -> None:
    ran = _trace()
    name = tree({"__init__.py": TRACE + "TOP = 1\n"}, deferred=[""])
    pkg = __import__(name)
    assert ran == [] and not lazy_imports.loaded(name)
    assert pkg.TOP == 1 and ran == [name]
    assert lazy_imports.loaded(name) and type(pkg).__name__ == "module"
    assert pkg.TOP == 1 and ran == [name]  # once
    with pytest.raises(AttributeError):
        pkg.nothing  # noqa: B018


PACKAGE = {
    "__init__.py": TRACE + "from . import later\nfrom .sub import VALUE\nTOP = 1\n",
    "sub.py": TRACE + "VALUE = 7\n",
    "later.py": TRACE + "from . import sub\nLATER = sub.VALUE\n",
}


def test_a_submodule_of_a_deferred_package_runs_the_package_first(tree) -> None:
    ran = _trace()
    name = tree(PACKAGE, deferred=[""])
    __import__(name)
    sub = __import__(f"{name}.sub", fromlist=["VALUE"])
    assert sub.VALUE == 7 and ran == [name, f"{name}.later", f"{name}.sub"]  # the order of a plain import
    assert sys.modules[name].TOP == 1 and lazy_imports.loaded(name)


def test_an_alone_submodule_runs_without_its_deferred_package(tree) -> None:
    ran = _trace()
    name = tree(PACKAGE, deferred=[""], alone=[".sub"])
    __import__(name)
    sub = __import__(f"{name}.sub", fromlist=["VALUE"])
    assert sub.VALUE == 7 and ran == [f"{name}.sub"] and not lazy_imports.loaded(name)
    assert sys.modules[name].TOP == 1 and ran == [f"{name}.sub", name, f"{name}.later"]


def test_deferred_submodules_run_in_the_order_of_a_plain_import(tree) -> None:
    ran = _trace()
    name = tree(PACKAGE, deferred=["", ".later"])
    pkg = __import__(f"{name}.later").later  # registered, deferred, and so is the package
    assert ran == [] and not lazy_imports.loaded(f"{name}.later")
    assert pkg.LATER == 7  # runs the package, whose body imports later, which imports sub
    assert ran == [name, f"{name}.later", f"{name}.sub"]
    assert sys.modules[f"{name}.later"] is pkg and sys.modules[name].later is pkg


def test_deferred_module_error_surfaces_at_first_use(tree) -> None:
    name = tree({"__init__.py": "raise ImportError('broken on purpose')\n"}, deferred=[""])
    pkg = __import__(name)
    with pytest.raises(ImportError, match="broken on purpose"):
        pkg.anything  # noqa: B018


# ----- the real server ------------------------------------------------------------------------------------------

WRAPPER = """
import json, os, signal, sys
from sofiaflow.runtime import lazy_imports

def dump(*_):
    names = sorted(name for name in list(sys.modules) if lazy_imports.loaded(name))
    tmp = os.environ["MODULES_OUT"] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(names, fh)
    os.replace(tmp, os.environ["MODULES_OUT"])

signal.signal(signal.SIGUSR1, dump)
from sofiaflow.runtime.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def idle_modules() -> list[str]:
    """The modules an idle `sofiaflow run` (default flows, embedded broker, editor) has run after one editor page."""
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "wrapper.py"
        wrapper.write_text(WRAPPER)
        out = Path(tmp) / "modules.json"
        port = free_port()
        env = {**os.environ, "SOFIAFLOW_ADMIN_PASSWORD": "lazy-test", "MODULES_OUT": str(out)}
        env.pop("SOFIAFLOW_EDITOR", None)
        args = [sys.executable, str(wrapper), "run", "--data-dir", str(Path(tmp) / "data")]
        args += ["--port", str(port), "--mqtt-port", str(free_port())]
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90
            page = (0, b"")
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    page = _get(f"http://127.0.0.1:{port}/editor/login")
                    break
                except OSError:
                    time.sleep(0.2)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert page[0] == 200 and b"<html" in page[1].lower(), page
            proc.send_signal(signal.SIGUSR1)
            while time.monotonic() < deadline and not out.exists():
                time.sleep(0.1)
            return json.loads(out.read_text())
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.mark.parametrize("name", NOT_AT_IDLE)
def test_idle_server_has_not_run_what_it_does_not_use(idle_modules: list[str], name: str) -> None:
    import importlib.util

    assert importlib.util.find_spec(name.split(".")[0]) is not None, (
        f"{name} is not installed: nothing to check"
    )
    assert name not in idle_modules


def test_idle_server_has_run_the_editor_and_its_socket_server(idle_modules: list[str]) -> None:
    # the check above would pass on a server that never built its editor
    for name in ("nicegui", "sofiaflow.editor.login_page", "socketio.async_server", "engineio.async_server"):
        assert name in idle_modules


def test_the_metrics_content_type_is_prometheus_clients() -> None:
    import prometheus_client

    from sofiaflow.runtime.http import metrics_routes

    assert metrics_routes.CONTENT_TYPE_LATEST == prometheus_client.CONTENT_TYPE_LATEST


FIRST_USE = """
import sys
from sofiaflow.runtime import lazy_imports
lazy_imports.install()
import nicegui  # noqa: F401
from sofiaflow.nodes.mqtt import mqtt_connection, mqtt_protocol
assert not any(lazy_imports.loaded(n) for n in ("aiomqtt", "paho.mqtt.client", "httpx", "redis", "requests"))
from sofiaflow.nodes.mqtt.mqtt_client import FastClient
import aiomqtt
assert issubclass(mqtt_protocol.MqttError, aiomqtt.MqttError) and issubclass(FastClient, aiomqtt.Client)
import httpx
assert httpx.Response(200, text="ok").text == "ok"
from redis.asyncio import Redis
import redis
assert Redis is redis.asyncio.Redis and redis.Redis.__module__ == "redis.client"
import socketio
assert socketio.AsyncClient.__module__ == "socketio.async_client"
import engineio
assert engineio.AsyncClient.__module__ == "engineio.async_client"
assert all(lazy_imports.loaded(n) for n in ("aiomqtt", "paho.mqtt.client", "httpx", "redis", "aiohttp"))
print("ok")
"""


def test_what_loads_late_works_at_first_use() -> None:
    out = subprocess.run([sys.executable, "-c", FIRST_USE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


@pytest.mark.parametrize(
    "statements",
    [
        "from redis.asyncio import Redis; Redis",
        "from redis.exceptions import RedisError; RedisError",
        "from redis import Redis; Redis",
        "from redis.backoff import ExponentialBackoff; from redis.retry import Retry",
        "from redis.asyncio.retry import Retry; Retry",
        "import nicegui; from redis.exceptions import WatchError; import redis.asyncio as ra; ra.Redis",
        "import nicegui; from redis.asyncio import Redis; import redis; assert redis.asyncio.Redis is Redis",
        "from aiomqtt.exceptions import MqttError; import aiomqtt; aiomqtt.Client; import paho.mqtt.client as p; p.Client",
        "import paho.mqtt.client as p; p.Client; import aiomqtt; aiomqtt.Client",
        "import httpx; httpx.AsyncClient",
    ],
)
def test_a_deferred_package_loads_whichever_part_is_used_first(statements: str) -> None:
    # a package and its deferred submodules run in the order of a plain import, whatever is imported first
    code = f"from sofiaflow.runtime import lazy_imports\nlazy_imports.install()\n{statements}\nprint('ok')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_release_free_memory_trims_glibcs_heap() -> None:
    import platform

    from sofiaflow.runtime.server import release_free_memory

    assert release_free_memory() is (platform.libc_ver()[0] == "glibc")
