"""Commands to Mosquitto's dynamic-security plugin, over MQTT, as its admin client.

The plugin takes `{"commands": [...]}` on `$CONTROL/dynamic-security/v1` and answers `{"responses": [...]}` on
`$CONTROL/dynamic-security/v1/response`, one response per command, each echoing the command's `correlationData`.
`DynsecLink.run(commands)` connects (a fresh connection per batch: device changes are rare, and a connection
that is not kept cannot be found broken later), subscribes to the answers, sends the batch and waits for every
answer; a command the plugin refuses raises DynsecError naming the command and the plugin's reason.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from sofiaflow.runtime.errors import ServiceUnavailable

COMMAND_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"


class DynsecError(ServiceUnavailable, RuntimeError):
    """Mosquitto refused a dynamic-security command, or could not be reached."""

    def __init__(self, message: str, command: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.command = command
        self.reason = reason


@dataclass(frozen=True)
class BrokerAddress:
    """Where the external broker listens, from `mqtt://host:port` (or `mqtts://`)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str, what: str = "SOFIAFLOW_MQTT_URL") -> BrokerAddress:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"{what}: {url!r} is not an mqtt:// or mqtts:// URL")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{what}: bad port in {url!r}") from None
        if not parts.hostname:
            raise ValueError(f"{what}: {url!r} names no host")
        tls = scheme in ("mqtts", "ssl")
        return cls(
            parts.hostname,
            port or (8883 if tls else 1883),
            tls,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


class DynsecLink:
    """The admin client of the dynamic-security plugin (see the module docstring)."""

    def __init__(self, address: BrokerAddress, username: str, password: str, timeout: float = 10.0) -> None:
        self.address = address
        self.username = username
        self.password = password
        self.timeout = timeout

    async def run(
        self, commands: list[dict[str, Any]], tolerate: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Send `commands` as one batch; their responses in order. DynsecError on the first refusal (the
        commands after it were still carried out by the plugin) whose reason is not in `tolerate` (e.g.
        "Client not found": such responses are returned with their `error`), or when the broker does not
        answer."""
        if not commands:
            return []
        batch = [{**command, "correlationData": secrets.token_hex(8)} for command in commands]
        responses = await self._exchange(batch)
        out = []
        for command in batch:
            response = responses[command["correlationData"]]
            error = response.get("error")
            if error and str(error) not in tolerate:
                raise DynsecError(
                    f"Mosquitto refused {command['command']}{_subject(command)}: {error}",
                    command["command"],
                    str(error),
                )
            out.append(response)
        return out

    async def one(self, command: dict[str, Any]) -> dict[str, Any]:
        return (await self.run([command]))[0]

    async def _exchange(self, batch: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        import aiomqtt

        wanted = {command["correlationData"] for command in batch}
        got: dict[str, dict[str, Any]] = {}
        where = f"{self.address.host}:{self.address.port}"
        tls = _tls_params() if self.address.tls else None
        try:
            async with asyncio.timeout(self.timeout):
                async with aiomqtt.Client(
                    self.address.host,
                    self.address.port,
                    username=self.username,
                    password=self.password,
                    identifier=f"sofiaflow-dynsec-{secrets.token_hex(6)}",
                    tls_params=tls,
                    keepalive=30,
                ) as client:
                    await client.subscribe(RESPONSE_TOPIC, qos=1)
                    await client.publish(COMMAND_TOPIC, json.dumps({"commands": batch}), qos=1)
                    async for message in client.messages:
                        for response in _responses(message.payload):
                            key = response.get("correlationData")
                            if key in wanted:
                                got[key] = response
                        if wanted <= got.keys():
                            return got
        except TimeoutError:
            raise DynsecError(
                f"Mosquitto at {where} did not answer the dynamic-security commands within {self.timeout:g} s "
                "(is the dynamic-security plugin loaded, and may the admin client use $CONTROL/dynamic-security?)"
            ) from None
        except aiomqtt.MqttError as exc:
            raise DynsecError(
                f"cannot reach Mosquitto's dynamic-security plugin at {where} as {self.username!r}: {exc}"
            ) from None
        raise DynsecError(f"Mosquitto at {where} closed the connection before answering")


def _responses(payload: Any) -> list[dict[str, Any]]:
    try:
        data = json.loads(payload)
    except (TypeError, ValueError):
        return []
    items = data.get("responses") if isinstance(data, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _subject(command: dict[str, Any]) -> str:
    for key in ("username", "rolename", "groupname"):
        if key in command:
            return f" ({key} {command[key]!r})"
    return ""


def _tls_params() -> Any:
    import ssl

    import aiomqtt

    return aiomqtt.TLSParameters(cert_reqs=ssl.CERT_REQUIRED)
