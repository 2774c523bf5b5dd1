"""Longer documentation (markdown) of the node types a new user meets first, shown in the help sidebar
after the type's own `help` text: what a message looks like on the way in and out, and an example."""

from __future__ import annotations

DOCS: dict[str, str] = {
    "python function": """
### Inputs
`msg` is a **Python dict**: read and set its keys with `msg["payload"]`, not `msg.payload`.
A JSON object arriving from MQTT or HTTP is a dict too (`msg["payload"]["temperature"]`).

### Outputs
- `return msg`: send the (changed) message on output 1.
- `return [msg1, msg2]`: one message per output (`None` for an output that sends nothing).
- `return [[a, b], None]`: several messages on output 1 in a row.
- `return None`: send nothing.

### Also available
`node.warn(text)`, `node.error(text, msg)`, `node.status({"fill": "green", "shape": "dot", "text": "ok"})`,
`context`, `flow`, `global_` (`.get(key)`, `.set(key, value)`, `.incr(key)`), `env.get(name)`.
The body runs in a sandbox: only the modules an administrator allows can be imported.

### Example
Convert a reading in Fahrenheit to Celsius and flag it:

```python
reading = msg["payload"]            # e.g. {"sensor": "s1", "f": 88.1}
celsius = round((reading["f"] - 32) * 5 / 9, 1)
msg["payload"] = {"sensor": reading["sensor"], "celsius": celsius}
msg["alert"] = celsius > 30
return msg
```

Two outputs, hot readings on the second:

```python
if msg["payload"]["celsius"] > 30:
    return [None, msg]
return [msg, None]
```
""",
    "inject": """
### Outputs
A message with the properties set in the form (`msg.payload` is a timestamp by default, or a string,
number, JSON, boolean, flow/global value...), and `msg.topic`.

### Details
Press the button on the node (deployed flows only) to send one now; or repeat at an interval, at a time
of day (crontab), or once shortly after each deploy.
""",
    "debug": """
### Inputs
Any message. It shows `msg.payload` (or the property you choose, or the whole message) in the debug
sidebar; objects can be expanded.

### Details
Click the node name in a debug message to find the node. "node status" also shows the value under the node.
""",
    "change": """
### Inputs / Outputs
Changes the message and sends it on: **set** a property (to a string, number, JSON, another property,
a JSONata expression...), **change** text inside it (search and replace), **delete** it or **move** it.
Rules apply in order.

### Example
Set `msg.topic` to `alerts` and move `msg.payload.value` to `msg.payload`.
""",
    "switch": """
### Inputs / Outputs
Routes each message to one or more outputs by rules on a property (`msg.payload` by default):
`==`, `!=`, `<`, `>`, between, contains, matches regex, is true/false/null, is of type, otherwise...
One output per rule; "stopping after the first match" sends to the first matching output only.
""",
    "mqtt in": """
### Outputs
One message per MQTT message received on the topic (wildcards `+` and `#` allowed):
`msg.topic`, `msg.payload` (a parsed JSON object when the output is "a parsed JSON object", else a
string or buffer), `msg.qos`, `msg.retain`, and `msg.device` when a device of the platform sent it.

### Details
Needs an **mqtt-broker** config node (pick or create it in the form). Pointed at the embedded broker
(127.0.0.1:1883) it takes the devices' messages in-process.
""",
    "mqtt out": """
### Inputs
`msg.payload` is published (objects as JSON) on the node's topic, or on `msg.topic` when the node has none;
`msg.qos` and `msg.retain` when the node does not set them.
""",
    "ontology-insert": """
### Inputs
`msg.payload`: one instance (a dict) or a list of instances of the ontology; each is checked against the
ontology's JSON Schema.

### Outputs
`msg.payload` becomes the id of the stored instance (a list of ids for a list). An instance the schema
refuses fails the message: it goes to the flow's catch nodes with the reason.
""",
    "api-endpoint": """
### Details
One operation of an API: pick the **api** config node (or create it), the method, the path (`/{id}` for a
path parameter), the parameters and the ontology operation that answers it. Consumers call
`/api-manager/server/api/v{version}/{api name}{path}` with an API key (created on the API keys page).

### Outputs
Only with operation **flow**: the call as a message (wire it to an http response node).
""",
    "api": """
### Details
The API an api-endpoint belongs to: its name and version make its URL, its state says who may call it
(development: its owner and administrators; published: anyone with a key).
""",
}
