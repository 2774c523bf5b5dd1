"""Pieces of Node.js / Node-RED behaviour used by `http request` and `websocket-client`.

Mustache rendering of the url, querystring and cookie encoding, how msg.payload becomes a request
body, Node's error codes for transport failures, proxy choice, and the `tls-config` SSL context.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import socket
import ssl
import tempfile
import urllib.request
from typing import Any
from urllib.parse import quote

import httpx
from chevron.tokenizer import ChevronError, tokenize

from sofiaflow.nodes.jsvalues import js_json_stringify, js_string
from sofiaflow.runtime.api import (
    UNDEFINED,
    Msg,
    Node,
    NodeError,
    ServiceUnavailable,
    js_number_string,
    typed_getter,
)

NOOVERRIDE = (
    "Warning: msg properties can no longer override set node properties. See bit.ly/nr-override-msg-props"
)
_HTML = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#39;",
        "/": "&#x2F;",
        "`": "&#x60;",
        "=": "&#x3D;",
    }
)
_CERT_CODES = {
    10: "CERT_HAS_EXPIRED",
    18: "DEPTH_ZERO_SELF_SIGNED_CERT",
    19: "SELF_SIGNED_CERT_IN_CHAIN",
    20: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    21: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    62: "ERR_TLS_CERT_ALTNAME_INVALID",
}


# ----- helpers shared with websocket-client -----------------------------------------------------------------------


def tls_context(user: Node, tls_id: str | None) -> ssl.SSLContext | None:
    """An SSLContext from the `tls-config` node `tls_id` (ca/cert/key/verifyservercert), or None.

    Duck-typed: a running config node with `ssl_context()` wins; otherwise its stored properties
    and credentials (`certdata`, `keydata`, `cadata`, `passphrase`) are read as Node-RED's 05-tls.js does.
    """
    if not tls_id:
        return None
    tls = user.config_node(tls_id)
    if tls is None:
        user.warn(f"tls: tls-config node {tls_id!r} is not running here; using default TLS settings")
        return None
    if callable(getattr(tls, "ssl_context", None)):
        return tls.ssl_context()
    cfg = {k: getattr(tls.config, k, None) for k in ("ca", "cert", "key", "verifyservercert", "alpnprotocol")}
    creds = tls.credentials or {}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca, cadata = str(cfg.get("ca") or "").strip(), creds.get("cadata") or ""
    if ca or cadata:
        ctx.load_verify_locations(cafile=ca or None, cadata=None if ca else cadata)
    else:
        ctx.load_default_certs()
    cert, key = str(cfg.get("cert") or "").strip(), str(cfg.get("key") or "").strip()
    try:
        if cert and key:
            ctx.load_cert_chain(cert, key, password=creds.get("passphrase") or None)
        elif not cert and creds.get("certdata") and creds.get("keydata"):
            with tempfile.TemporaryDirectory() as tmp:  # ssl only loads client certs from files
                paths = [os.path.join(tmp, n) for n in ("cert.pem", "key.pem")]
                for path, text in zip(paths, (creds["certdata"], creds["keydata"]), strict=True):
                    with open(path, "w", encoding="utf-8") as fh:
                        fh.write(text)
                ctx.load_cert_chain(paths[0], paths[1], password=creds.get("passphrase") or None)
    except (OSError, ssl.SSLError) as exc:
        raise NodeError(f"tls: cannot load the certificate of tls-config {tls_id!r}: {exc}") from None
    if str(cfg["verifyservercert"]).lower() in ("false", "0"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.get("alpnprotocol"):
        ctx.set_alpn_protocols([str(cfg["alpnprotocol"]).strip()])
    return ctx


_DEFAULT_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def ssl_context(verify: Any) -> ssl.SSLContext:
    """The SSLContext for `verify`; the default verifying / non-verifying ones are built once (slow to make)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    ctx = _DEFAULT_CONTEXTS.get(bool(verify))
    if ctx is None:
        ctx = _DEFAULT_CONTEXTS[bool(verify)] = httpx.create_ssl_context(verify=bool(verify))
    return ctx


def header_pairs(user: Node, headers: Any) -> list[tuple[Any, Any]]:
    """Compile Node-RED header rows `{keyType,keyValue,valueType,valueValue}` into (name, value) getters."""
    if isinstance(headers, dict):  # {name: value}, as some hand-written flows store them
        headers = [
            {"keyType": "other", "keyValue": k, "valueType": "other", "valueValue": v}
            for k, v in headers.items()
        ]
    if not isinstance(headers, list):
        raise NodeError(f"headers: must be a list of header rows, not {headers!r}")
    out = []
    for row in headers:
        if not isinstance(row, dict):
            raise NodeError(f"headers: each row must be an object, not {row!r}")
        parts = []
        for kind, value in (
            (row.get("keyType"), row.get("keyValue")),
            (row.get("valueType"), row.get("valueValue")),
        ):
            if kind == "other":
                parts.append(lambda msg, v=value: v)
            elif kind in ("msg", "env"):
                parts.append(typed_getter(user, value, kind))
            else:
                parts.append(lambda msg, v=kind: v)
        out.append((parts[0], parts[1]))
    return out


# ----- mustache for the url (mustache.js as Node-RED calls it: the message is the view) --------------------------


def compile_url(text: str) -> list:
    try:
        tokens = list(tokenize(text))
    except ChevronError as exc:
        raise NodeError(f"url: invalid Mustache template: {' '.join(str(exc).split())}") from None
    root: list = []
    stack = [root]
    for tag, key in tokens:
        if tag == "literal":
            stack[-1].append(key)
        elif tag in ("variable", "no escape"):
            stack[-1].append((tag == "variable", key, None))
        elif tag in ("section", "inverted section"):
            children: list = []
            stack[-1].append((tag, key, children))
            stack.append(children)
        elif tag == "end" and len(stack) > 1:
            stack.pop()
    return root


def _lookup(views: list, name: str) -> Any:
    if name == ".":
        return views[-1]
    first, *rest = name.split(".")
    for view in reversed(views):
        if isinstance(view, dict) and first in view:
            value = view[first]
            for part in rest:
                value = value.get(part) if isinstance(value, dict) else None
            return value
    return None


def render_url(tree: list, views: list) -> str:
    out = []
    for item in tree:
        if item.__class__ is str:
            out.append(item)
            continue
        kind, name, children = item
        value = _lookup(views, name)
        if children is None:
            if value is not None and value is not UNDEFINED:
                text = js_string(value)
                out.append(text.translate(_HTML) if kind else text)
            continue
        truthy = bool(value) or isinstance(value, (dict, list))
        if kind == "inverted section":
            if not truthy or value == []:
                out.append(render_url(children, views))
        elif isinstance(value, list):
            out.extend(render_url(children, [*views, element]) for element in value)
        elif truthy:
            out.append(render_url(children, views if value is True else [*views, value]))
    return "".join(out)


# ----- small pieces of Node.js behaviour ------------------------------------------------------------------------


def encode_uri_component(text: str) -> str:
    return quote(text, safe="-_.!~*'()")


def querystring(obj: dict) -> str:
    """Node's querystring.stringify."""
    parts = []
    for key, value in obj.items():
        for item in value if isinstance(value, list) else [value]:
            text = js_string(item) if isinstance(item, (str, int, float)) else ""
            parts.append(f"{encode_uri_component(str(key))}={encode_uri_component(text)}")
    return "&".join(parts)


def parse_cookie(text: str) -> dict[str, str]:
    """The `cookie` package's parse: first occurrence of each name wins, quotes and %xx removed."""
    out: dict[str, str] = {}
    for pair in text.split(";"):
        if "=" not in pair:
            continue
        key, value = pair.split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key and key not in out:
            try:
                out[key] = urllib.request.unquote(value, errors="strict")
            except UnicodeDecodeError:
                out[key] = value
    return out


def extract_cookies(set_cookie: list[str]) -> dict[str, dict]:
    cookies = {}
    for line in set_cookie:
        parsed = parse_cookie(line)
        key = line[: line.find("=")].strip()
        parsed["value"] = parsed.pop(key, None)
        cookies[key] = parsed
    return cookies


def headers_hash(headers: dict) -> str:
    return hashlib.sha1(json.dumps(headers, sort_keys=True, default=str).encode()).hexdigest()[:8]


def response_headers(response: httpx.Response) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in response.headers.multi_items():
        if name == "set-cookie":
            out.setdefault(name, []).append(value)
        else:
            out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def set_header(headers: dict[str, str], name: str, value: Any) -> None:
    """Case-insensitive update as Node-RED's updateHeader: a blank value removes the header."""
    for key in [k for k in headers if k.lower() == name.lower()]:
        del headers[key]
    if value not in (None, "", False, 0) and value is not UNDEFINED:
        headers[name] = js_string(value)


class RequestFailed(ServiceUnavailable):
    def __init__(self, code: str, message: str, name: str = "RequestError") -> None:
        super().__init__(message)
        self.code, self.name = code, name


def failure(exc: BaseException, url: httpx.URL, seconds: float) -> RequestFailed:
    """Node's error code and message for a transport failure."""
    if isinstance(exc, RequestFailed):
        return exc
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return RequestFailed(
            "ETIMEDOUT",
            f"Timeout awaiting 'request' for {js_number_string(seconds * 1000)}ms",
            "TimeoutError",
        )
    chain, cur = [], exc
    while cur is not None and len(chain) < 8:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            code = _CERT_CODES.get(e.verify_code, "ERR_TLS_CERT")
            return RequestFailed(code, e.verify_message or str(e))
        if isinstance(e, socket.gaierror):
            return RequestFailed("ENOTFOUND", f"getaddrinfo ENOTFOUND {url.host}")
        if isinstance(e, ssl.SSLError):  # its errno is the TLS library's, not a system error code
            reason = (e.reason or "handshake failed").upper()
            return RequestFailed(f"ERR_SSL_{reason}", e.strerror or str(e))
        if isinstance(e, OSError) and e.errno in errno.errorcode:
            code = errno.errorcode[e.errno]
            return RequestFailed(
                code, f"connect {code} {url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
            )
    return RequestFailed(type(exc).__name__.upper(), str(exc) or type(exc).__name__)


def proxy_for(url: httpx.URL, proxy_node: Node | None) -> str | None:
    """The proxy URL for `url`: the `http proxy` config node's (minus `noproxy` hosts), else the environment's."""
    host = url.host
    if proxy_node is not None:
        noproxy = getattr(proxy_node.config, "noproxy", None) or []
        if any(n and (host == n or host.endswith("." + n.lstrip("."))) for n in noproxy):
            return None
        proxy = str(getattr(proxy_node.config, "url", None) or "")
    else:
        if urllib.request.proxy_bypass(host):
            return None
        proxy = urllib.request.getproxies().get(url.scheme, "")
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy
    return proxy or None


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request_body(
    method: str, msg: Msg, headers: dict[str, str], paytoqs: str
) -> tuple[Any, dict | None, str]:
    """(content, multipart fields, extra query) for the request, as Node-RED encodes msg.payload."""
    payload = msg.get("payload", UNDEFINED)
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if payload is UNDEFINED:
        return None, None, ""
    if method not in ("GET", "HEAD"):
        if ctype == "multipart/form-data" and isinstance(payload, dict):
            set_header(headers, "content-type", None)
            return None, payload, ""
        if isinstance(payload, (str, bytes, bytearray)):
            return payload, None, ""
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            return js_number_string(payload), None, ""
        if ctype == "application/x-www-form-urlencoded" and isinstance(payload, dict):
            return querystring(payload), None, ""
        if ctype is None:
            headers["Content-Type"] = "application/json"
        return js_json_stringify(payload), None, ""
    if method == "GET" and paytoqs == "query":
        if not isinstance(payload, dict):
            raise NodeError("Invalid payload")
        return None, None, querystring(payload)
    if method == "GET" and paytoqs == "body":
        if isinstance(payload, (dict, list)) or payload is None or isinstance(payload, bool):
            return js_json_stringify(payload), None, ""
        if isinstance(payload, (int, float)):
            return js_number_string(payload), None, ""
        return payload, None, ""
    return None, None, ""


def multipart(fields: dict) -> list:
    """form-data parts: strings and Buffers as they are, `{value, options:{filename,contentType}}`, else JSON."""
    files = []
    for name, val in fields.items():
        if val is None or val is UNDEFINED:
            continue
        if isinstance(val, dict) and "value" in val:
            opts = val.get("options") or {}
            content = val["value"] if isinstance(val["value"], (bytes, str)) else js_string(val["value"])
            files.append((name, (opts.get("filename"), content, opts.get("contentType"))))
        else:
            content = val if isinstance(val, (str, bytes)) else js_json_stringify(val)
            files.append((name, (None, content)))
    return files


HEADER_ROWS: dict = {
    "x-widget": "rows",
    "x-columns": [
        {
            "key": "keyType",
            "title": "Header",
            "x-choices": [
                ["other", "other (type it)"],
                ["msg", "from msg."],
                ["Accept", "Accept"],
                ["Authorization", "Authorization"],
                ["Cache-Control", "Cache-Control"],
                ["Content-Type", "Content-Type"],
                ["User-Agent", "User-Agent"],
            ],
            "default": "other",
        },
        {"key": "keyValue", "title": "Name"},
        {
            "key": "valueType",
            "title": "Value from",
            "x-choices": [["other", "this text"], ["msg", "msg."], ["env", "env variable"]],
            "default": "other",
        },
        {"key": "valueValue", "title": "Value"},
    ],
}
"""The editor's rows for Node-RED's header list (`keyType`/`keyValue`/`valueType`/`valueValue`), as the
http request and websocket client forms show it."""
