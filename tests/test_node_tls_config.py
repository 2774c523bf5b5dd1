"""tls-config with a real `http request`: a real HTTPS server on 127.0.0.1 with a CA and a server certificate
made here, client certificates checked by the server, and verification on and off."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ipaddress
import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sofiaflow.runtime.testing import FlowTester

# ----- certificates -------------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> bytes:
    enc = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Pki:
    """A CA and leaf certificates it signs, written as PEM files under `root`."""

    def __init__(self, root: Path, cn: str = "sofiaflow test CA") -> None:
        self.root = root
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_pem = _pem_cert(self.cert).decode()
        self.ca_path = self.write(f"{cn.replace(' ', '_')}.pem", self.ca_pem.encode())

    def write(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.write_bytes(data)
        return str(path)

    def leaf(self, cn: str, *, server: bool, passphrase: bytes | None = None) -> tuple[str, str]:
        """(cert path, key path) of a certificate for `cn` signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return (
            self.write(f"{cn}.crt", _pem_cert(cert)),
            self.write(f"{cn}.key", _pem_key(key, passphrase)),
        )


# ----- a real HTTPS server ------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        peer = self.connection.getpeercert()  # type: ignore[attr-defined]
        who = "anonymous"
        if peer:
            who = dict(pair[0] for pair in peer["subject"])["commonName"]
        body = f"{self.path} for {who}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class HttpsServer:
    """A threaded HTTPS server on 127.0.0.1; with `client_ca` it demands a client certificate that CA signed."""

    def __init__(self, cert: str, key: str, client_ca: str | None = None) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=client_ca)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> HttpsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def pki(tmp_path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def https(pki):
    cert, key = pki.leaf("server", server=True)
    with HttpsServer(cert, key) as server:
        yield server


# ----- flows --------------------------------------------------------------------------------------------------


def tls_node(**props) -> dict:
    node = {
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
        "verifyservercert": True,
        "alpnprotocol": "",
    }
    node.update(props)
    return node


def flows(url: str, tls: dict) -> list[dict]:
    request = {
        "id": "req",
        "type": "http request",
        "z": "t",
        "name": "",
        "method": "GET",
        "ret": "txt",
        "paytoqs": "ignore",
        "url": url,
        "tls": tls["id"],
        "persist": False,
        "proxy": "",
        "insecureHTTPParser": False,
        "authType": "",
        "senderr": False,
        "headers": [],
        "x": 1,
        "y": 1,
        "wires": [[]],
    }
    catch = {"id": "c", "type": "catch", "z": "t", "scope": None, "uncaught": False, "x": 1, "y": 1}
    catch["wires"] = [[]]
    done = {"id": "d", "type": "complete", "z": "t", "scope": ["req"], "uncaught": False, "x": 1, "y": 1}
    done["wires"] = [[]]
    return [{"id": "t", "type": "tab", "label": "t"}, request, catch, done, tls]


async def until(check, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def get(
    registry, url: str, tls: dict, credentials: dict | None = None
) -> tuple[dict | None, FlowTester]:
    """(the response message or None, the tester) for one request; errors are in t.outputs('c')."""
    creds = {"tls": credentials} if credentials else None
    async with FlowTester(flows(url, tls), registry, credentials=creds) as t:
        t.inject("req", {})
        await until(lambda: t.outputs("d")[0])
        outs = t.outputs("req")[0]
        t.final_status = t.node("req").last_status
        return (outs[0] if outs else None), t


def failure(out: dict | None, t: FlowTester) -> str:
    """The error of a failed request: caught by `catch`, and sent on as Node-RED does (no 2xx response)."""
    [caught] = t.outputs("c")[0]
    assert out is not None and "statusCode" in out and out["payload"].startswith("RequestError: ")
    assert out["statusCode"] == t.final_status["text"]
    return caught["error"]["message"]


# ----- tests --------------------------------------------------------------------------------------------------


async def test_verify_with_the_ca_file_works(registry, pki, https):
    out, _ = await get(registry, f"{https.url}/a", tls_node(ca=pki.ca_path))
    assert out is not None and out["statusCode"] == 200 and out["payload"] == "/a for anonymous"


async def test_verify_with_the_ca_as_uploaded_pem_works(registry, pki, https):
    out, _ = await get(registry, f"{https.url}/b", tls_node(), {"cadata": pki.ca_pem})
    assert out is not None and out["payload"] == "/b for anonymous"


async def test_a_tls_node_makes_a_schemeless_url_https(registry, pki, https):
    out, _ = await get(registry, f"127.0.0.1:{https.port}/c", tls_node(ca=pki.ca_path))
    assert out is not None and out["payload"] == "/c for anonymous"


async def test_verify_without_the_ca_fails_with_a_clear_error(registry, https):
    out, t = await get(registry, f"{https.url}/d", tls_node())
    assert failure(out, t) == "unable to get local issuer certificate"
    assert out["statusCode"] == "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
    assert out["payload"] == f"RequestError: unable to get local issuer certificate : {https.url}/d"


async def test_verify_with_another_ca_fails(registry, pki, https, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    out, t = await get(registry, f"{https.url}/e", tls_node(ca=Pki(other, "another CA").ca_path))
    assert failure(out, t) == "unable to get local issuer certificate"


async def test_verify_off_works_without_the_ca(registry, https):
    out, _ = await get(registry, f"{https.url}/f", tls_node(verifyservercert=False))
    assert out is not None and out["payload"] == "/f for anonymous"
    out, _ = await get(registry, f"{https.url}/g", tls_node(verifyservercert="false"))
    assert out is not None and out["payload"] == "/g for anonymous"


@pytest.fixture
def mtls(pki):
    cert, key = pki.leaf("server", server=True)
    with HttpsServer(cert, key, client_ca=pki.ca_path) as server:
        yield server


async def test_client_certificate_from_files(registry, pki, mtls):
    cert, key = pki.leaf("device-7", server=False)
    out, _ = await get(registry, f"{mtls.url}/h", tls_node(ca=pki.ca_path, cert=cert, key=key))
    assert out is not None and out["payload"] == "/h for device-7"


async def test_client_certificate_with_a_passphrase(registry, pki, mtls):
    cert, key = pki.leaf("device-8", server=False, passphrase=b"s3cret")
    tls = tls_node(ca=pki.ca_path, cert=cert, key=key)
    out, _ = await get(registry, f"{mtls.url}/i", tls, {"passphrase": "s3cret"})
    assert out is not None and out["payload"] == "/i for device-8"


async def test_client_certificate_as_uploaded_pem(registry, pki, mtls):
    cert, key = pki.leaf("device-9", server=False)
    creds = {"cadata": pki.ca_pem, "certdata": Path(cert).read_text(), "keydata": Path(key).read_text()}
    out, _ = await get(registry, f"{mtls.url}/j", tls_node(), creds)
    assert out is not None and out["payload"] == "/j for device-9"


async def test_without_a_client_certificate_the_server_refuses(registry, pki, mtls):
    out, t = await get(registry, f"{mtls.url}/k", tls_node(ca=pki.ca_path))
    assert failure(out, t) and "/k for" not in out["payload"]


async def test_a_client_certificate_from_another_ca_is_refused(registry, pki, mtls, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    cert, key = Pki(other, "rogue CA").leaf("intruder", server=False)
    out, t = await get(registry, f"{mtls.url}/l", tls_node(ca=pki.ca_path, cert=cert, key=key))
    assert failure(out, t) and "/l for" not in out["payload"]
    # the server's TLS alert (or its reset, when the reset comes first) is reported as such, never as EPERM: the
    # errno of a TLS error is the TLS library's, not a system error code
    assert "EPERM" not in str(out) and ("ERR_SSL_" in str(out) or "ECONNRESET" in str(out))


async def test_an_unreadable_client_key_is_a_clear_error(registry, pki, mtls, tmp_path):
    cert, _ = pki.leaf("device-10", server=False)
    missing = tmp_path / "nope.key"
    out, t = await get(registry, f"{mtls.url}/m", tls_node(ca=pki.ca_path, cert=cert, key=str(missing)))
    # as Node-RED's tls-config, an invalid one is reported and the request goes on without its settings
    assert any(
        "cannot load the certificate of tls-config 'tls'" in e["msg"] and "No such file" in e["msg"]
        for e in t.errors()
    ), t.errors()
    assert failure(out, t) and "/m for" not in out["payload"]
