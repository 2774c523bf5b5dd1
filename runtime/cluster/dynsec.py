"""Devices as Mosquitto clients: the dynamic-security plugin kept in step with the device registry.

In cluster mode (`SOFIAFLOW_MQTT_URL` names the cluster's Mosquitto) devices connect to Mosquitto, not to an
embedded broker. Each registered device is a dynamic-security client and role:

- client: username = the device's name, password = its MQTT token, `textname` "sofiaflow device" (the mark of
  the clients this module manages: the admin client and the runtime's own client are never touched), and
  `textdescription` the id of the token Mosquitto holds the password of;
- role `sofiaflow-device-<name>`: for each of the device's topic filters F (`{device}` expanded, since
  Mosquitto 2.0 cannot put a client id or user name into dynamic-security ACLs, hence one role per device)
  `publishClientSend F`, `subscribePattern F` and `publishClientReceive F`, all allowed; nothing else is, so
  a device publishes and subscribes only within its filters (a subscription wider than them is refused);
  and SSAP over MQTT as itself (`ssap_acls`: `/queue/message`, `/topic/message/<name>`,
  `/topic/subscription/<name>`), which the embedded broker grants SSAP clients whatever their topics.

Mosquitto keeps one password per client, and the registry keeps only hashes of the tokens: the password reaches
Mosquitto when a token is issued (`POST /devices`, `POST /devices/{name}/tokens`), the one moment the token is
known. So a device's MQTT password is its newest token: issuing a token moves the password to it (an open
connection with the previous token is dropped by Mosquitto and must reconnect with the new token; the older
tokens still work over HTTP until revoked). The client is enabled only while the device is enabled and the
token Mosquitto holds is active: disabling the device or revoking that token disables the client, which
Mosquitto disconnects at once; deleting the device deletes its client and role. Changing topics rewrites the
role's ACLs and drops open connections, so they come back under the new rights.

Devices registered before cluster mode (their tokens exist only as hashes) get their client and role at the
reconcile, disabled and with an unusable random password: they are listed (log and `DeviceSync.need_token`)
as needing a new token, and work on Mosquitto once one is issued. The reconcile (at every worker's start; it is
idempotent) also removes the clients and roles of devices that no longer exist, and puts every other device's
ACLs and enabled state right.

`sync(name, token)` is the single operation: it reads the device from the registry and makes Mosquitto agree
(for a device that is gone: removes it). The `/devices` routes await it, so the API answers after Mosquitto has.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from sofiaflow.runtime.cluster.dynsec_link import BrokerAddress, DynsecError, DynsecLink
from sofiaflow.runtime.core.services import ServiceKey
from sofiaflow.runtime.security.devices import Device, DeviceNotFoundError, DeviceRegistry, expanded_filters

log = logging.getLogger("sofiaflow.cluster.dynsec")

MARK = "sofiaflow device"
"""`textname` of the Mosquitto clients that stand for devices."""
ROLE_PREFIX = "sofiaflow-device-"
ACL_TYPES = ("publishClientSend", "subscribePattern", "publishClientReceive")
NOT_FOUND = ("Client not found", "Role not found")
ALREADY = ("Client already exists", "Role already exists")
PLATFORM_ROLE = "sofiaflow-platform"

DEVICE_SYNC: ServiceKey[DeviceSync] = ServiceKey("mosquitto-devices")
"""The service the `/devices` routes call (cluster mode only)."""


def role_of(name: str) -> str:
    return ROLE_PREFIX + name


def ssap_acls(name: str) -> set[tuple[str, str]]:
    """SSAP over MQTT (the IoT Broker flow's gateway, nodes/onesait/ssap_mqtt_in.py) as device `name`: requests on
    `/queue/message` and `/topic/message/<name>`, answers there, INDICATIONs on `/topic/subscription/<name>`."""
    own, indications = f"/topic/message/{name}", f"/topic/subscription/{name}"
    return {
        ("publishClientSend", "/queue/message"),
        ("publishClientSend", own),
        ("subscribeLiteral", own),
        ("publishClientReceive", own),
        ("subscribeLiteral", indications),
        ("publishClientReceive", indications),
    }


def wanted_acls(device: Device) -> set[tuple[str, str]]:
    """(acltype, topic) of every ACL the device's role must hold: its topics, and SSAP over MQTT as itself."""
    return {
        (acltype, topic) for topic in expanded_filters(device.name, device.topics) for acltype in ACL_TYPES
    } | ssap_acls(device.name)


@dataclass
class ReconcileReport:
    removed: list[str] = field(default_factory=list)
    """Devices whose Mosquitto client and role were removed (no such device any more)."""
    need_token: list[str] = field(default_factory=list)
    """Devices with no usable password on Mosquitto: they connect once a new token is issued."""
    synced: int = 0
    clashes: list[str] = field(default_factory=list)
    """Devices named like a Mosquitto client that is not a device (left alone: they cannot connect)."""


class DeviceSync:
    """Keeps the dynamic-security plugin in step with the registry (see the module docstring)."""

    def __init__(self, registry: DeviceRegistry, link: DynsecLink) -> None:
        self.registry = registry
        self.link = link
        self.need_token: set[str] = set()

    async def sync(self, name: str, token: str | None = None) -> None:
        """Make Mosquitto's client and role of device `name` match the registry; `token` (just issued) becomes
        the client's password. Raises DynsecError when Mosquitto refuses or cannot be reached."""
        try:
            device = self.registry.get(name)
        except DeviceNotFoundError:
            await self.remove(name)
            return
        client, role = await self._read(name)
        if client is not None and client.get("textname") != MARK:
            raise DynsecError(
                f"Mosquitto has a client named {name!r} that is not a device (the runtime's or an operator's); "
                "a device cannot take its name",
                "createClient",
                "Client already exists",
            )
        await self.link.run(self._commands(device, client, role, token))

    async def remove(self, name: str) -> None:
        """Delete the client, then the role, of device `name` (absent ones are fine). A client of that name that
        is not a device (the runtime's, the admin's, an operator's) is left alone."""
        client, _role = await self._read(name)
        if client is not None and client.get("textname") != MARK:
            return
        await self.link.run(
            [
                {"command": "deleteClient", "username": name},
                {"command": "deleteRole", "rolename": role_of(name)},
            ],
            tolerate=NOT_FOUND,
        )
        self.need_token.discard(name)

    async def reconcile(self) -> ReconcileReport:
        """Mosquitto after the registry for every device: the clients of devices that are gone removed, the
        others created or put right (see the module docstring)."""
        report = ReconcileReport()
        clients, roles = await self.link.run(
            [{"command": "listClients", "verbose": True}, {"command": "listRoles", "verbose": True}]
        )
        listed = [c for c in clients.get("data", {}).get("clients", []) if isinstance(c.get("username"), str)]
        ours = {c["username"]: c for c in listed if c.get("textname") == MARK}
        foreign = {c["username"] for c in listed if c.get("textname") != MARK}
        role_acls = {
            r["rolename"]: r
            for r in roles.get("data", {}).get("roles", [])
            if isinstance(r.get("rolename"), str)
        }
        devices = {d.name: d for d in self.registry.list()}
        commands: list[dict[str, Any]] = []
        # other workers may change devices meanwhile: a client is removed only if its device is still gone now,
        # and a device Mosquitto does not have as the registry says goes through `sync`, which reads it again
        for name in sorted(set(ours) - set(devices)):
            if self._exists(name):
                continue
            commands.append({"command": "deleteClient", "username": name})
            if role_of(name) in role_acls:
                commands.append({"command": "deleteRole", "rolename": role_of(name)})
            report.removed.append(name)
            self.need_token.discard(name)
        drifted = []  # no client, or not as the registry says: each is synced alone, on a fresh read
        for name, device in devices.items():
            if name in foreign:  # never touch the admin's, the runtime's or an operator's client
                report.clashes.append(name)
            elif name not in ours or self._commands(device, ours[name], role_acls.get(role_of(name)), None):
                drifted.append(name)
        await self.link.run(commands, tolerate=NOT_FOUND)
        for name in drifted:
            try:
                await self.sync(name)
            except DynsecError as exc:  # e.g. created by another worker meanwhile: that worker made it right
                log.warning("Mosquitto: device %s not reconciled: %s", name, exc)
        report.need_token = sorted(self.need_token)
        report.synced = len(devices)
        if report.removed:
            log.info("Mosquitto: removed the clients of devices that no longer exist: %s", report.removed)
        if report.clashes:
            log.warning(
                "Mosquitto: these devices are named like a Mosquitto client that is not a device, and cannot "
                "connect: %s",
                ", ".join(report.clashes),
            )
        if report.need_token:
            log.warning(
                "Mosquitto: these devices need a new token to connect (POST /devices/{name}/tokens): %s",
                ", ".join(report.need_token),
            )
        return report

    def _exists(self, name: str) -> bool:
        try:
            self.registry.get(name)
        except DeviceNotFoundError:
            return False
        return True

    async def ensure_platform_client(self, username: str, password: str) -> bool:
        """The runtime's own client (`platform` mqtt-broker nodes): created with role `sofiaflow-platform`
        (publish, subscribe and receive `#`) when Mosquitto has no client of that name; an existing one is left
        as the operator made it (changing it would disconnect every worker). True when it was created."""
        client, _role = await self.link.run(
            [
                {"command": "getClient", "username": username},
                {"command": "getRole", "rolename": PLATFORM_ROLE},
            ],
            tolerate=NOT_FOUND,
        )
        if not client.get("error"):
            return False
        commands: list[dict[str, Any]] = []
        if _role.get("error"):
            commands.append(
                {
                    "command": "createRole",
                    "rolename": PLATFORM_ROLE,
                    "textname": "sofiaflow runtime",
                    "acls": [
                        {"acltype": a, "topic": "#", "allow": True}
                        for a in (*ACL_TYPES, "unsubscribePattern")
                    ],
                }
            )
        commands.append(
            {
                "command": "createClient",
                "username": username,
                "password": password,
                "textname": "sofiaflow runtime",
                "roles": [{"rolename": PLATFORM_ROLE}],
            }
        )
        await self.link.run(commands, tolerate=ALREADY)
        return True

    # ----- what to send ---------------------------------------------------------------------------------------
    async def _read(self, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        client, role = await self.link.run(
            [
                {"command": "getClient", "username": name},
                {"command": "getRole", "rolename": role_of(name)},
            ],
            tolerate=NOT_FOUND,
        )
        return (
            None if client.get("error") else client.get("data", {}).get("client"),
            None if role.get("error") else role.get("data", {}).get("role"),
        )

    def _commands(
        self,
        device: Device,
        client: dict[str, Any] | None,
        role: dict[str, Any] | None,
        token: str | None,
    ) -> list[dict[str, Any]]:
        """The commands that take Mosquitto from (client, role) to what `device` (and `token`) ask for."""
        name, rolename = device.name, role_of(device.name)
        commands: list[dict[str, Any]] = []
        want = wanted_acls(device)
        if role is None:
            commands.append(
                {
                    "command": "createRole",
                    "rolename": rolename,
                    "textname": f"{MARK} {name}",
                    "acls": [{"acltype": a, "topic": t, "allow": True} for a, t in sorted(want)],
                }
            )
            acls_changed = client is not None
        else:
            have = {
                (acl.get("acltype"), acl.get("topic")): bool(acl.get("allow")) for acl in role.get("acls", [])
            }
            extra = sorted(key for key, allow in have.items() if key not in want or not allow)
            missing = sorted(key for key in want if key not in have or not have[key])
            for acltype, topic in extra:
                commands.append(
                    {"command": "removeRoleACL", "rolename": rolename, "acltype": acltype, "topic": topic}
                )
            for acltype, topic in missing:
                commands.append(
                    {
                        "command": "addRoleACL",
                        "rolename": rolename,
                        "acltype": acltype,
                        "topic": topic,
                        "allow": True,
                    }
                )
            acls_changed = bool(extra or missing)
        token_id = token.split(".", 1)[0] if token else (client or {}).get("textdescription") or ""
        active = {t.id for t in device.tokens or () if t.active}
        enabled = device.enabled and token_id in active
        if client is None:
            commands.append(
                {
                    "command": "createClient",
                    "username": name,
                    "password": token or secrets.token_urlsafe(32),
                    "textname": MARK,
                    "textdescription": token_id,
                    "roles": [{"rolename": rolename}],
                }
            )
            if not enabled:
                commands.append({"command": "disableClient", "username": name})
        else:
            if token is not None:  # a new password, and the id of its token: drops the open connection
                commands.append(
                    {
                        "command": "modifyClient",
                        "username": name,
                        "password": token,
                        "textdescription": token_id,
                    }
                )
            if not any(r.get("rolename") == rolename for r in client.get("roles", [])):
                commands.append({"command": "addClientRole", "username": name, "rolename": rolename})
            disabled = bool(client.get("disabled"))
            if enabled and disabled:
                commands.append({"command": "enableClient", "username": name})
            elif not enabled and not disabled:
                commands.append({"command": "disableClient", "username": name})
            elif enabled and acls_changed and token is None:
                # new rights: open connections come back under them (modifying a client disconnects it)
                commands.append({"command": "modifyClient", "username": name, "textname": MARK})
        if enabled:
            self.need_token.discard(name)
        elif token_id not in active:
            self.need_token.add(name)
        else:
            self.need_token.discard(name)
        return commands


def device_sync_from_settings(registry: DeviceRegistry, settings: Any) -> DeviceSync:
    """The DeviceSync of the settings' broker (SOFIAFLOW_MQTT_URL) and admin client (SOFIAFLOW_DYNSEC_*)."""
    address = BrokerAddress.parse(settings.mqtt_url)
    username = settings.dynsec_username
    password = settings.dynsec_password
    if not username or password is None:
        raise RuntimeError(
            "SOFIAFLOW_MQTT_URL is set, so devices are kept as Mosquitto dynamic-security clients: set "
            "SOFIAFLOW_DYNSEC_USERNAME and SOFIAFLOW_DYNSEC_PASSWORD to the plugin's admin client "
            "(mosquitto_ctrl dynsec init <file> <username>)"
        )
    return DeviceSync(registry, DynsecLink(address, username, password))


async def open_device_sync(runtime: Any, stack: Any) -> DeviceSync:
    """Runtime step (cluster mode): reconcile Mosquitto with the registry, then offer DEVICE_SYNC to the routes.
    A broker that cannot be reached or refuses stops the start with the reason."""
    from sofiaflow.runtime.core.services import DEVICES

    registry = runtime.engine.services[DEVICES]
    device_sync = device_sync_from_settings(registry, runtime.settings)
    settings = runtime.settings
    try:
        if settings.mqtt_username and settings.mqtt_password is not None:
            await device_sync.ensure_platform_client(settings.mqtt_username, settings.mqtt_password)
        report = await device_sync.reconcile()
    except DynsecError as exc:
        raise RuntimeError(f"devices on Mosquitto (SOFIAFLOW_MQTT_URL): {exc}") from exc
    for name in report.clashes:
        runtime.startup_problems.append(
            f"device {name}: Mosquitto has a client of that name that is not a device; the device cannot connect"
        )
    for name in report.need_token:
        runtime.startup_problems.append(
            f"device {name}: needs a new token to connect to Mosquitto (POST /devices/{name}/tokens)"
        )
    runtime._provide(stack, DEVICE_SYNC, device_sync)
    return device_sync
