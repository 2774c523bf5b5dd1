"""http request against a real HTTP server (Starlette under uvicorn on a free 127.0.0.1 port, in a thread)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from ports import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sofiaflow.nodes.network.http_util import compile_url, parse_cookie, querystring, render_url
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester
from tests.conftest import require_binary
from tests.test_node_http_proxy import Tinyproxy

# ----- the server -----------------------------------------------------------------------------------------------


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": str(request.url.query),
            "headers": dict(request.headers),
            "body": body.decode("latin-1"),
            "cookies": dict(request.cookies),
            "client_port": request.client.port,
        }
    )


async def status(request: Request) -> Response:
    return PlainTextResponse(
        f"status {request.path_params['code']}", status_code=int(request.path_params["code"])
    )


async def redirect(request: Request) -> Response:
    n = int(request.path_params["n"])
    resp = RedirectResponse(f"/redirect/{n - 1}" if n > 1 else "/echo", status_code=302)
    resp.set_cookie(f"hop{n}", str(n))
    return resp


async def see_other(request: Request) -> Response:
    return RedirectResponse("/echo", status_code=303)


async def loop(request: Request) -> Response:
    return RedirectResponse("/loop", status_code=302)


async def cookies(request: Request) -> Response:
    resp = PlainTextResponse("cookies")
    resp.set_cookie("a", "1", path="/", httponly=True)
    resp.set_cookie("b", "hello world", max_age=60)
    return resp


async def basic(request: Request) -> Response:
    want = "Basic " + base64.b64encode(b"ada:s3cret").decode()
    if request.headers.get("authorization") != want:
        return PlainTextResponse("no", status_code=401, headers={"www-authenticate": 'Basic realm="x"'})
    return PlainTextResponse("welcome ada")


async def bearer(request: Request) -> Response:
    if request.headers.get("authorization") != "Bearer tok-123":
        return PlainTextResponse("no", status_code=401)
    return JSONResponse({"ok": True})


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


async def digest(request: Request) -> Response:
    header = request.headers.get("authorization", "")
    if header.startswith("Digest "):
        parts = dict(p.strip().split("=", 1) for p in header[7:].split(","))
        parts = {k: v.strip('"') for k, v in parts.items()}
        ha1, ha2 = _md5("ada:test:pw"), _md5(f"{request.method}:{parts['uri']}")
        want = _md5(f"{ha1}:{parts['nonce']}:{parts['nc']}:{parts['cnonce']}:{parts['qop']}:{ha2}")
        if parts.get("response") == want:
            return PlainTextResponse("digest ok")
    return PlainTextResponse(
        "no", status_code=401, headers={"www-authenticate": 'Digest realm="test", qop="auth", nonce="abc123"'}
    )


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "1")))
    return PlainTextResponse("late")


async def user(request: Request) -> Response:
    return PlainTextResponse(f"user {request.path_params['id']}")


async def as_json(request: Request) -> Response:
    return JSONResponse({"a": [1, 2.5, "x"], "b": None})


async def not_json(request: Request) -> Response:
    return PlainTextResponse("{not json")


async def no_content(request: Request) -> Response:
    return Response(status_code=204)


async def binary(request: Request) -> Response:
    return Response(bytes(range(256)), media_type="application/octet-stream")


APP = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
        Route("/status/{code}", status, methods=["GET", "POST"]),
        Route("/redirect/{n}", redirect),
        Route("/see-other", see_other, methods=["POST"]),
        Route("/loop", loop),
        Route("/cookies", cookies),
        Route("/basic", basic),
        Route("/bearer", bearer),
        Route("/digest", digest),
        Route("/slow", slow),
        Route("/user/{id}", user),
        Route("/json", as_json),
        Route("/notjson", not_json),
        Route("/nocontent", no_content),
        Route("/binary", binary),
    ]
)


@pytest.fixture(scope="module")
def base() -> str:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(APP, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "test HTTP server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


# ----- flows ----------------------------------------------------------------------------------------------------


def flow(**props) -> list[dict]:
    node = {
        "id": "req",
        "type": "http request",
        "z": "t",
        "name": "",
        "method": "GET",
        "ret": "txt",
        "paytoqs": "ignore",
        "url": "",
        "tls": "",
        "persist": False,
        "proxy": "",
        "insecureHTTPParser": False,
        "authType": "",
        "senderr": False,
        "headers": [],
        "x": 1,
        "y": 1,
        "wires": [["c"]],
    }
    node.update(props)
    catch = {
        "id": "c",
        "type": "catch",
        "z": "t",
        "scope": None,
        "uncaught": False,
        "x": 1,
        "y": 1,
        "wires": [[]],
    }
    done = {
        "id": "d",
        "type": "complete",
        "z": "t",
        "scope": ["req"],
        "uncaught": False,
        "x": 1,
        "y": 1,
        "wires": [[]],
    }
    return [{"id": "t", "type": "tab", "label": "t"}, node, catch, done]


async def until(check, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def call(registry, msgs, credentials=None, **props) -> tuple[list[dict], FlowTester]:
    """Send `msgs` through one http request node; the output messages once all are done."""
    msgs = msgs if isinstance(msgs, list) else [msgs]
    async with FlowTester(flow(**props), registry, credentials=credentials) as t:
        for m in msgs:
            t.inject("req", m)
        await until(lambda: len(t.outputs("d")[0]) >= len(msgs))
        t.final_status = t.node("req").last_status
        return t.outputs("req")[0], t


# ----- tests ----------------------------------------------------------------------------------------------------


async def test_get_text_with_the_node_url(registry, base):
    [out], t = await call(registry, {"payload": "ignored"}, url=f"{base}/user/7")
    assert out["payload"] == "user 7" and out["statusCode"] == 200
    assert out["headers"]["content-type"].startswith("text/plain")
    assert out["responseUrl"] == f"{base}/user/7" and out["redirectList"] == [] and out["retry"] == 0
    assert "x-node-red-request-node" in out["headers"]
    assert t.final_status == {}


async def test_mustache_url_and_msg_url(registry, base):
    [out], _ = await call(
        registry, {"payload": {"id": "a/b"}, "host": base[7:]}, url="http://{{{host}}}/user/{{{payload.id}}}x"
    )
    assert out["statusCode"] == 404  # a/b is two path segments
    [out], _ = await call(
        registry, {"payload": {"id": 42}, "host": base[7:]}, url="{{{host}}}/user/{{payload.id}}"
    )
    assert out["payload"] == "user 42"  # no scheme: http:// is assumed
    [out], _ = await call(registry, {"url": f"{base}/user/msg"})
    assert out["payload"] == "user msg"


async def test_msg_url_does_not_override_the_node_url(registry, base):
    [out], t = await call(registry, {"url": f"{base}/user/msg"}, url=f"{base}/user/node")
    assert out["payload"] == "user node"
    assert any("can no longer override" in e["msg"] for e in t.logs if e["level"] == "warn")


async def test_no_url_is_an_error_without_output(registry, base):
    outs, t = await call(registry, {"payload": 1})
    assert outs == [] and t.outputs("c")[0][0]["error"]["message"] == "No url specified"


async def test_non_http_transport_is_refused(registry, base):
    outs, t = await call(registry, {"url": "ftp://example.com/x"})
    assert outs == [] and t.final_status["text"] == "non-http transport requested"


async def test_post_object_is_json(registry, base):
    [out], _ = await call(
        registry, {"payload": {"n": 1.0, "s": "é"}}, url=f"{base}/echo", method="POST", ret="obj"
    )
    assert out["payload"]["method"] == "POST"
    assert out["payload"]["body"].encode("latin-1").decode() == '{"n":1,"s":"é"}'
    assert out["payload"]["headers"]["content-type"] == "application/json"


async def test_post_strings_numbers_and_forms(registry, base):
    outs, _ = await call(
        registry,
        [
            {"payload": "plain"},
            {"payload": 12.5},
            {
                "payload": {"a": [1, 2], "b": "x y"},
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
        ],
        url=f"{base}/echo",
        method="PUT",
        ret="obj",
    )
    bodies = sorted(o["payload"]["body"] for o in outs)
    assert bodies == ["12.5", "a=1&a=2&b=x%20y", "plain"]


async def test_multipart_form_data(registry, base):
    payload = {
        "field": "v",
        "file": {"value": b"abc", "options": {"filename": "a.txt", "contentType": "text/plain"}},
    }
    [out], _ = await call(
        registry,
        {"payload": payload, "headers": {"content-type": "multipart/form-data"}},
        url=f"{base}/echo",
        method="POST",
        ret="obj",
    )
    body = out["payload"]["body"]
    assert out["payload"]["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert 'name="field"' in body and 'filename="a.txt"' in body and "abc" in body


async def test_method_use_takes_msg_method(registry, base):
    [out], t = await call(
        registry, {"method": "patch", "payload": "p"}, url=f"{base}/echo", method="use", ret="obj"
    )
    assert out["payload"]["method"] == "PATCH" and out["payload"]["body"] == "p"
    assert not [e for e in t.logs if e["level"] == "warn"]
    [out], t = await call(registry, {"method": "patch"}, url=f"{base}/echo", method="GET", ret="obj")
    assert out["payload"]["method"] == "GET"
    assert any("override" in e["msg"] for e in t.logs if e["level"] == "warn")


async def test_paytoqs_query_and_body(registry, base):
    [out], _ = await call(
        registry, {"payload": {"q": "a b", "n": 2}}, url=f"{base}/echo?x=1", paytoqs="query", ret="obj"
    )
    assert out["payload"]["query"] == "x=1&q=a%20b&n=2"
    [out], _ = await call(registry, {"payload": {"q": 1}}, url=f"{base}/echo", paytoqs="body", ret="obj")
    assert out["payload"]["body"] == '{"q":1}' and out["payload"]["method"] == "GET"
    [out], _ = await call(registry, {"payload": {"q": 1}}, url=f"{base}/echo", paytoqs="ignore", ret="obj")
    assert out["payload"]["query"] == "" and out["payload"]["body"] == ""
    outs, t = await call(registry, {"payload": "text"}, url=f"{base}/echo", paytoqs=True)
    assert outs == [] and t.outputs("c")[0][0]["error"]["message"] == "Invalid payload"


async def test_headers_from_msg_and_node(registry, base):
    headers = [
        {"keyType": "other", "keyValue": "X-Node", "valueType": "other", "valueValue": "n"},
        {"keyType": "Accept", "keyValue": "", "valueType": "application/json", "valueValue": ""},
        {"keyType": "other", "keyValue": "x-from-msg", "valueType": "msg", "valueValue": "topic"},
        {"keyType": "other", "keyValue": "X-Remove", "valueType": "other", "valueValue": ""},
    ]
    [out], _ = await call(
        registry,
        {"topic": "tp", "headers": {"x-node": "msg", "X-Remove": "r", "x-keep": 1}},
        url=f"{base}/echo",
        headers=headers,
        ret="obj",
    )
    sent = out["payload"]["headers"]
    assert sent["x-node"] == "n" and sent["accept"] == "application/json" and sent["x-from-msg"] == "tp"
    assert sent["x-keep"] == "1" and "x-remove" not in sent
    [out], _ = await call(registry, {}, url=f"{base}/echo", headers={"X-Dict": "d"}, ret="obj")
    assert out["payload"]["headers"]["x-dict"] == "d"


async def test_response_headers_are_not_sent_again(registry, base):
    flows = flow(url=f"{base}/cookies")
    second = dict(flows[1], id="req2", url=f"{base}/echo", ret="obj", wires=[[]])
    flows[1]["wires"] = [["req2"]]
    flows[3]["scope"] = ["req2"]
    async with FlowTester(flows + [second], registry) as t:
        t.inject("req", {})
        await until(lambda: t.outputs("d")[0])
        sent = t.outputs("req2")[0][0]["payload"]["headers"]
    assert "set-cookie" not in sent and "x-node-red-request-node" not in sent


async def test_status_codes_are_not_errors(registry, base):
    outs, t = await call(registry, [{"payload": ""}], url=f"{base}/status/503", senderr=True)
    assert outs[0]["statusCode"] == 503 and outs[0]["payload"] == "status 503"
    assert t.outputs("c")[0] == []


async def test_ret_bin_obj_and_parse_errors(registry, base):
    [out], _ = await call(registry, {}, url=f"{base}/binary", ret="bin")
    assert out["payload"] == bytes(range(256))
    [out], _ = await call(registry, {}, url=f"{base}/json", ret="obj")
    assert out["payload"] == {"a": [1, 2.5, "x"], "b": None}
    [out], t = await call(registry, {}, url=f"{base}/notjson", ret="obj")
    assert out["payload"] == "{not json"
    assert any(e["msg"] == "JSON parse error" for e in t.logs if e["level"] == "warn")
    [out], _ = await call(registry, {}, url=f"{base}/nocontent", ret="obj")
    assert out["payload"] == {} and out["statusCode"] == 204


async def test_redirects_cookies_and_follow_off(registry, base):
    [out], _ = await call(registry, {}, url=f"{base}/redirect/3", ret="obj")
    assert out["responseUrl"] == f"{base}/echo"
    assert [r["location"] for r in out["redirectList"]] == ["/redirect/2", "/redirect/1", "/echo"]
    assert out["redirectList"][0]["cookies"]["hop3"]["value"] == "3"
    assert out["payload"]["cookies"] == {"hop3": "3", "hop2": "2", "hop1": "1"}  # jar kept across hops
    [out], _ = await call(registry, {"followRedirects": False}, url=f"{base}/redirect/3")
    assert out["statusCode"] == 302 and out["headers"]["location"] == "/redirect/2"
    [out], _ = await call(registry, {"payload": "x"}, url=f"{base}/see-other", method="POST", ret="obj")
    assert out["payload"]["method"] == "GET" and out["payload"]["body"] == ""


async def test_too_many_redirects(registry, base):
    [out], t = await call(registry, {}, url=f"{base}/loop")
    assert out["statusCode"] == "ERR_TOO_MANY_REDIRECTS"
    assert out["payload"] == f"MaxRedirectsError: Redirected 21 times. Aborting. : {base}/loop"
    assert t.outputs("c")[0][0]["error"]["message"] == "Redirected 21 times. Aborting."


async def test_cookies_in_and_out(registry, base):
    [out], _ = await call(
        registry,
        {
            "cookies": {"x": "a b", "y": {"value": "a b", "encode": False}, "z": None},
            "headers": {"cookie": "h=1"},
        },
        url=f"{base}/echo",
        ret="obj",
    )
    assert out["payload"]["headers"]["cookie"] == "h=1; x=a%20b; y=a b"
    [out], _ = await call(registry, {}, url=f"{base}/cookies")
    assert out["responseCookies"]["a"] == {
        "Path": "/",
        "SameSite": "lax",
        "value": "1",
    }  # HttpOnly has no value
    assert (
        out["responseCookies"]["b"]["value"] == "hello world"
        and out["responseCookies"]["b"]["Max-Age"] == "60"
    )
    assert len(out["headers"]["set-cookie"]) == 2


async def test_basic_auth(registry, base):
    creds = {"req": {"user": "ada", "password": "s3cret"}}
    [out], _ = await call(registry, {}, credentials=creds, url=f"{base}/basic")
    assert out["payload"] == "welcome ada"
    [out], _ = await call(registry, {}, credentials=creds, url=f"{base}/basic", authType="basic")
    assert out["payload"] == "welcome ada"
    [out], _ = await call(registry, {}, url=f"http://ada:s3cret@{base[7:]}/basic")
    assert out["payload"] == "welcome ada" and out["responseUrl"] == f"{base}/basic"
    [out], _ = await call(
        registry, {}, credentials={"req": {"user": "ada", "password": "bad"}}, url=f"{base}/basic"
    )
    assert out["statusCode"] == 401


async def test_bearer_and_digest(registry, base):
    [out], _ = await call(
        registry,
        {},
        credentials={"req": {"password": "tok-123"}},
        url=f"{base}/bearer",
        authType="bearer",
        ret="obj",
    )
    assert out["payload"] == {"ok": True}
    [out], _ = await call(
        registry,
        {},
        credentials={"req": {"user": "ada", "password": "pw"}},
        url=f"{base}/digest",
        authType="digest",
    )
    assert out["payload"] == "digest ok"


async def test_timeout_and_refused(registry, base):
    [out], t = await call(registry, {"requestTimeout": 200}, url=f"{base}/slow?s=2")
    assert out["statusCode"] == "ETIMEDOUT" and out["payload"].startswith("TimeoutError: Timeout awaiting")
    assert t.outputs("c")[0][0]["error"]["message"] == "no response from server"
    assert t.final_status == {"fill": "red", "shape": "ring", "text": "no response from server"}
    port = free_port()
    outs, t = await call(registry, {}, url=f"http://127.0.0.1:{port}/", senderr=True)
    assert outs == []
    assert t.outputs("c")[0][0]["error"]["message"] == f"connect ECONNREFUSED 127.0.0.1:{port}"


async def test_bad_request_timeouts_warn(registry, base):
    outs, t = await call(registry, [{"requestTimeout": "abc"}, {"requestTimeout": -5}], url=f"{base}/user/1")
    warns = [e["msg"] for e in t.logs if e["level"] == "warn"]
    assert len(outs) == 2 and "Timeout value is not a valid number, ignoring" in warns
    assert "Timeout value is negative, ignoring" in warns


async def test_requests_run_concurrently(registry, base):
    started = time.monotonic()
    outs, _ = await call(registry, [{"payload": i} for i in range(5)], url=f"{base}/slow?s=0.4", persist=True)
    assert len(outs) == 5 and all(o["payload"] == "late" for o in outs)
    assert time.monotonic() - started < 1.5  # five 0.4 s requests in parallel, not 2 s in a row


async def test_tls_rejectunauthorized_against_plain_http_is_ignored(registry, base):
    [out], _ = await call(registry, {"rejectUnauthorized": False}, url=f"{base}/user/9")
    assert out["payload"] == "user 9"


async def test_bad_config_refuses_the_deploy(registry):
    for props in (
        {"method": "FETCH"},
        {"ret": "xml"},
        {"authType": "ntlm"},
        {"url": "http://x/{{#a}}"},
        {"headers": "x"},
        {"headers": [1]},
    ):
        with pytest.raises(FlowValidationError):
            async with FlowTester(flow(**props), registry):
                pass


async def test_persist_reuses_the_connection(registry, base):
    for persist, same in ((True, True), (False, False)):
        async with FlowTester(flow(url=f"{base}/echo", ret="obj", persist=persist), registry) as t:
            for n in (1, 2):
                t.inject("req", {})
                await until(lambda n=n: len(t.outputs("d")[0]) >= n)
            ports = {o["payload"]["client_port"] for o in t.outputs("req")[0]}
        assert (len(ports) == 1) is same


# ----- TLS (the shipped tls-config node) and a proxy (the shipped http proxy node, through tinyproxy) -----------


def self_signed(tmp_path) -> tuple[str, str, str]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (tmp_path / "cert.pem").write_text(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), pem


@pytest.fixture
def https_base(tmp_path):
    cert, key, pem = self_signed(tmp_path)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            APP,
            host="127.0.0.1",
            port=port,
            log_level="critical",
            lifespan="off",
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"https://127.0.0.1:{port}", cert, pem
    server.should_exit = True
    thread.join(10)


async def test_https_self_signed(registry, https_base):
    base, cert, pem = https_base
    outs, t = await call(registry, {}, url=f"{base}/user/1", senderr=True)
    assert outs == [] and t.outputs("c")[0][0]["error"]["message"]
    assert t.final_status["text"] in ("DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN")
    [out], _ = await call(registry, {"rejectUnauthorized": False}, url=f"{base}/user/2")
    assert out["payload"] == "user 2"
    tls = {"id": "tls1", "type": "tls-config", "cert": "", "key": "", "ca": cert, "verifyservercert": True}
    flows = flow(url=f"127.0.0.1:{base.rsplit(':', 1)[1]}/user/3", tls="tls1") + [tls]
    async with FlowTester(flows, registry) as t:  # https:// is assumed with a tls node; its CA is trusted
        t.inject("req", {})
        await until(lambda: t.outputs("d")[0])
        assert t.outputs("req")[0][0]["payload"] == "user 3"
    tls = {"id": "tls1", "type": "tls-config", "cert": "", "key": "", "ca": "", "verifyservercert": True}
    async with FlowTester(
        flow(url=f"{base}/user/4", tls="tls1") + [tls], registry, credentials={"tls1": {"cadata": pem}}
    ) as t:
        t.inject("req", {"rejectUnauthorized": False})  # ignored when a tls node is set
        await until(lambda: t.outputs("d")[0])
        assert t.outputs("req")[0][0]["payload"] == "user 4"


async def test_http_proxy_node(registry, base, tmp_path):
    """The shipped http proxy node: the request goes through a real tinyproxy that asks for credentials."""
    proxy = Tinyproxy(require_binary("tinyproxy"), tmp_path, basic_auth=("u", "p"))
    try:
        node = {"id": "px", "type": "http proxy", "url": proxy.url, "noproxy": ["skip.test"]}
        answers = {}
        for password in ("p", "wrong"):
            async with FlowTester(
                flow(url=f"{base}/echo", proxy="px") + [node],
                registry,
                credentials={"px": {"username": "u", "password": password}},
            ) as t:
                t.inject("req", {})
                await until(lambda t=t: t.outputs("d")[0])
                [answers[password]] = t.outputs("req")[0]
    finally:
        proxy.stop()
    assert answers["p"]["statusCode"] == 200
    echoed = json.loads(answers["p"]["payload"])
    assert echoed["path"] == "/echo" and "sofiaflow-test-proxy" in echoed["headers"].get("via", "")
    assert "proxy-authorization" not in echoed["headers"]  # the proxy consumed it
    assert answers["wrong"]["statusCode"] in (401, 407)  # tinyproxy refuses with 401
    log = proxy.log_text()
    assert f"{base}/echo" in log


# ----- pure helpers -----------------------------------------------------------------------------------------------


def test_url_template_escaping_and_sections():
    tree = compile_url("http://h/{{a}}/{{{a}}}/{{#list}}{{.}},{{/list}}{{^none}}z{{/none}}{{b.c}}{{missing}}")
    assert (
        render_url(tree, [{"a": "x/y", "list": [1, 2.0, True], "b": {"c": False}}])
        == "http://h/x&#x2F;y/x/y/1,2,true,zfalse"
    )


def test_cookie_parse_and_querystring():
    assert parse_cookie('a=1; b="q"; a=2; c=%41; bad') == {"a": "1", "b": "q", "c": "A"}
    assert querystring({"a": [1, "x"], "b": None, "c": True, "d": "é&"}) == "a=1&a=x&b=&c=true&d=%C3%A9%26"


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(
            lambda k: (
                "." not in k
                and "{" not in k
                and "}" not in k
                and "=" not in k
                and k.strip() == k
                and k not in ("!", ">", "&", "#", "^", "/")
            )
        ),
        st.text(max_size=10),
        max_size=4,
    )
)
def test_triple_mustache_inserts_values_verbatim(values):
    template = "/".join("{{{" + k + "}}}" for k in values)
    assert render_url(compile_url(template), [values]) == "/".join(values.values())


def test_querystring_round_trips():
    from urllib.parse import parse_qs

    assert parse_qs(querystring({"k": "v w", "n": 3})) == {"k": ["v w"], "n": ["3"]}
    assert json.loads("{}") == {}
