"""NodeRoutes (service "http"): Express paths, hot add/remove, root prefix, 404/401/500/503/504 JSON, served by
a real uvicorn server on a free loopback port; device-only routes checked by the real DeviceRegistry (SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI, WebSocket
from hypothesis import given
from hypothesis import strategies as st
from ports import free_port
from starlette.responses import PlainTextResponse, Response
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from sofiaflow.runtime.data.config_db import connect as db_connect
from sofiaflow.runtime.http.node_routes import NodeRoutes, compile_path, in_front, route_key
from sofiaflow.runtime.security.devices import DeviceRegistry


@contextlib.asynccontextmanager
async def serve(app):
    """Serve `app` with uvicorn on a free 127.0.0.1 port in this loop; yields "127.0.0.1:<port>"."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
def devices(tmp_path):
    """The real "devices" service on a SQLite file."""
    engine = db_connect(f"sqlite:///{tmp_path / 'devices.db'}")
    yield DeviceRegistry(engine)
    engine.dispose()


def text(body: str, status: int = 200):
    async def handler(request, params):
        return PlainTextResponse(body.format(**params), status)

    return handler


# ----- paths -------------------------------------------------------------------------------------------------


def test_static_paths_compile_to_nothing_and_share_keys():
    assert compile_path("/hello") == (None, [])
    assert route_key("/Hello/") == route_key("hello") == "/hello"
    assert route_key("/user/:id") == route_key("/USER/:name/") == "/user/:"
    assert route_key("/v/:n?") != route_key("/v/:n")


@pytest.mark.parametrize(
    ("path", "url", "params"),
    [
        ("/user/:id", "/user/42", {"id": "42"}),
        ("/user/:id", "/USER/42/", {"id": "42"}),
        ("/user/:id", "/user", None),
        ("/user/:id", "/user/42/x", None),
        ("/a/:x/b/:y", "/a/1/b/2", {"x": "1", "y": "2"}),
        ("/v/:n?", "/v", {}),
        ("/v/:n?", "/v/7", {"n": "7"}),
        ("/files/*", "/files/a/b.txt", {"0": "a/b.txt"}),
        ("/files/*", "/files", None),
        ("/f.json/:x", "/fXjson/1", None),
    ],
)
def test_express_patterns(path, url, params):
    routes = NodeRoutes()
    routes.add_route("get", path, text("x"), owner="n1")
    route, found = routes.find("get", url)
    if params is None:
        assert route is None
    else:
        assert route is not None and found == params


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=20,
    )
)
def test_a_param_takes_any_segment(segment):
    routes = NodeRoutes()
    routes.add_route("post", "/item/:id/detail", text("x"), owner="n1")
    route, params = routes.find("post", f"/item/{segment}/detail")
    assert route is not None and params == {"id": segment}
    assert routes.find("get", f"/item/{segment}/detail")[0] is None


def test_methods_all_and_clashes():
    routes = NodeRoutes()
    routes.add_route("get", "/x", text("get"), owner="a")
    routes.add_route("post", "/x", text("post"), owner="b")
    with pytest.raises(ValueError, match="already served by 'a'"):
        routes.add_route("get", "/X/", text("again"), owner="c")
    with pytest.raises(ValueError, match="already served"):
        routes.add_route("all", "/x", text("all"), owner="c")
    with pytest.raises(ValueError, match="unknown method"):
        routes.add_route("head", "/y", text("y"), owner="c")
    routes.add_route("all", "/u/:id", text("all"), owner="d")
    with pytest.raises(ValueError, match="already served by 'd'"):
        routes.add_route("put", "/u/:other", text("put"), owner="e")
    assert routes.find("delete", "/u/1")[0].owner == "d"
    routes.remove_owner("a")
    assert routes.find("get", "/x")[0] is None and routes.find("post", "/x")[0].owner == "b"
    routes.remove_owner("d")
    assert routes.find("get", "/u/1")[0] is None
    assert sorted(routes.routes()) == [("post", "/x", "b")]


# ----- served for real ----------------------------------------------------------------------------------------


async def test_hot_add_and_remove_while_serving_with_404_json():
    routes = NodeRoutes()
    async with serve(routes) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        r = await http.get("/hello")
        assert r.status_code == 404
        assert r.json() == {"code": "not_found", "message": "no flow serves GET /hello"}
        routes.add_route("get", "/hello", text("hi"), owner="n1")
        routes.add_route("get", "/user/:id", text("user {id}"), owner="n1")
        assert (await http.get("/hello")).text == "hi"
        assert (await http.get("/user/ada")).text == "user ada"
        assert (await http.head("/hello")).status_code == 200  # GET routes answer HEAD, as Express
        assert (await http.post("/hello")).status_code == 404  # a method nobody serves
        routes.remove_owner("n1")
        assert (await http.get("/hello")).status_code == 404
        assert (await http.get("/user/ada")).status_code == 404


async def test_root_prefix():
    routes = NodeRoutes(root="/api/")
    routes.add_route("get", "/hello", text("hi"), owner="n1")
    async with serve(routes) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        assert (await http.get("/api/hello")).text == "hi"
        assert (await http.get("/hello")).status_code == 404
        assert (await http.get("/apihello")).status_code == 404


async def test_mounted_as_fallback_of_a_fastapi_app():
    app = FastAPI()

    @app.get("/admin")
    async def admin() -> dict:
        return {"admin": True}

    routes = NodeRoutes(root="/nodes")
    app.mount("/", routes)
    routes.add_route("get", "/hello/:name", text("hello {name}"), owner="n1")
    async with serve(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        assert (await http.get("/admin")).json() == {"admin": True}
        assert (await http.get("/nodes/hello/bob")).text == "hello bob"
        assert (await http.get("/hello/bob")).status_code == 404


async def test_in_front_of_an_admin_app_admin_routes_still_win():
    admin = APIRouter()

    @admin.get("/flows")
    async def flows() -> dict:
        return {"admin": "flows"}

    @admin.websocket("/comms")
    async def comms(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("admin comms")
        await ws.close()

    app = FastAPI()
    app.include_router(admin)
    routes = NodeRoutes()
    app.mount("/", routes)
    for method, path in (("get", "/flows"), ("post", "/flows"), ("get", "/hello"), ("get", "/u/:id")):
        routes.add_route(method, path, text(f"node {method} {path}"), owner="n1")

    async def node_ws(ws):
        await ws.accept()
        await ws.send_text("node ws")
        await ws.close()

    routes.add_websocket("/comms", node_ws, owner="l1")
    routes.add_websocket("/ws", node_ws, owner="l1")
    async with serve(routes.in_front_of(app)) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        for _ in range(2):  # the second round answers from the cached decisions
            assert (await http.get("/flows")).json() == {"admin": "flows"}
            assert (await http.post("/flows")).text == "node post /flows"  # no admin POST /flows here
            assert (await http.get("/hello")).text == "node get /hello"
            assert (await http.get("/u/7")).text == "node get /u/:id"
            r = await http.get("/unknown")
            assert r.status_code == 404 and r.json()["code"] == "not_found"  # through the fallback mount
        async with connect(f"ws://{host}/comms") as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "admin comms"
        async with connect(f"ws://{host}/ws") as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "node ws"
    async with (
        serve(in_front(app, lambda: None)) as host,
        httpx.AsyncClient(base_url=f"http://{host}") as http,
    ):
        assert (await http.get("/flows")).json() == {"admin": "flows"}  # no routes yet: all to the app
        assert (await http.get("/hello")).text == "node get /hello"  # ... whose fallback mount serves them


async def test_auth_hook_and_handler_failure(devices):
    routes = NodeRoutes()
    _device, token = devices.create("sensor-1", {}, ["sensors/{device}/#"])
    hook = routes.device_auth(devices)

    async def who(request, params):
        return PlainTextResponse(request.scope.get("sofiaflow.device") or "?")

    async def broken(request, params):
        raise RuntimeError("boom")

    routes.add_route("get", "/who", who, owner="n1", auth=hook)
    routes.add_route("get", "/broken", broken, owner="n2")
    async with serve(routes) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        r = await http.get("/who")
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        r = await http.get("/who", headers={"Authorization": f"Bearer {token}x"})
        assert r.status_code == 401 and r.json()["message"] == "invalid device name or token"
        r = await http.get("/who", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.text == "sensor-1"
        devices.update("sensor-1", enabled=False)
        r = await http.get("/who", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "disabled" in r.json()["message"]
        r = await http.get("/broken")
        assert r.status_code == 500 and r.json() == {
            "code": "unexpected_error",
            "message": "RuntimeError: boom",
        }


async def test_wait_gives_504_json_after_the_timeout():
    routes = NodeRoutes(response_timeout=0.2)

    async def never(request, params):
        return await routes.wait(asyncio.get_running_loop().create_future())

    async def answered(request, params):
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, fut.set_result, Response(b"ok"))
        return await routes.wait(fut)

    routes.add_route("get", "/never", never, owner="n1")
    routes.add_route("get", "/soon", answered, owner="n1")
    async with serve(routes) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        r = await http.get("/never")
        assert r.status_code == 504
        assert r.json() == {"code": "timeout", "message": "no http response node answered within 0.2 s"}
        assert (await http.get("/soon")).text == "ok"
    assert NodeRoutes()._timeout.body == (
        b'{"code":"timeout","message":"no http response node answered within 120 s"}'
    )


async def test_shutdown_answers_waiting_requests_at_once():
    routes = NodeRoutes(response_timeout=60)

    async def never(request, params):
        return await routes.wait(asyncio.get_running_loop().create_future())

    routes.add_route("get", "/never", never, owner="n1")
    async with serve(routes) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
        pending = asyncio.create_task(http.get("/never"))
        for _ in range(100):
            if routes._waiting:
                break
            await asyncio.sleep(0.01)
        assert routes.shutdown() == 1
        r = await asyncio.wait_for(pending, 5)
        assert r.status_code == 503 and r.json()["code"] == "shutting_down"


async def test_websocket_paths():
    routes = NodeRoutes()

    async def hello(ws):
        await ws.accept()
        await ws.send_text("hi " + ws.url.path)
        await ws.close()

    routes.add_websocket("/ws/a", hello, owner="l1")
    with pytest.raises(ValueError, match="already served by 'l1'"):
        routes.add_websocket("/ws/a/", hello, owner="l2")
    async with serve(routes) as host:
        async with connect(f"ws://{host}/ws/a") as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "hi /ws/a"
        with pytest.raises(InvalidStatus):
            async with connect(f"ws://{host}/ws/b"):
                pass
        routes.remove_owner("l1")
        with pytest.raises(InvalidStatus):
            async with connect(f"ws://{host}/ws/a"):
                pass
