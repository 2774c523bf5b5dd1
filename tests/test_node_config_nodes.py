"""tls-config and http proxy config nodes load with Node-RED's stored properties and serve their users."""

from __future__ import annotations

import ssl

from sofiaflow.nodes.network.http_util import proxy_for, tls_context
from sofiaflow.runtime.testing import FlowTester


async def test_tls_config_builds_an_ssl_context(registry):
    flows = [
        {"id": "t1", "type": "tab"},
        {
            "id": "tls",
            "type": "tls-config",
            "name": "",
            "cert": "",
            "key": "",
            "ca": "",
            "certname": "",
            "keyname": "",
            "caname": "",
            "servername": "",
            "verifyservercert": False,
            "alpnprotocol": "",
        },
        {"id": "j", "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [[]]},
    ]
    async with FlowTester(flows, registry) as t:
        ctx = tls_context(t.node("j"), "tls")
        assert isinstance(ctx, ssl.SSLContext)
        assert ctx.verify_mode == ssl.CERT_NONE and ctx.check_hostname is False


async def test_http_proxy_is_chosen_except_for_noproxy_hosts(registry):
    import httpx

    flows = [
        {"id": "t1", "type": "tab"},
        {
            "id": "px",
            "type": "http proxy",
            "name": "",
            "url": "http://proxy.local:3128",
            "noproxy": ["internal.example"],
        },
    ]
    async with FlowTester(flows, registry) as t:
        node = t.node("px")
        assert proxy_for(httpx.URL("http://api.example/x"), node) == "http://proxy.local:3128"
        assert proxy_for(httpx.URL("http://svc.internal.example/x"), node) is None
