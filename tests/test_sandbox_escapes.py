"""Escape attempts against the python function sandbox, run in a real engine with secrets planted.

Another tenant's MQTT broker holds a password in its credentials and the engine holds a token; a
`python function` node runs each attempt through `FlowTester`. An attempt must be refused (at deploy
or at run time) or produce nothing private, and neither secret may appear in any output, debug message,
log or error text. A hypothesis generator composes more attempts from receivers and access steps.
"""

from __future__ import annotations

import types
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.function.sandbox import DEFAULT_ALLOWED_MODULES, CompiledScript, SandboxError
from sofiaflow.runtime.api import NodeError
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

MQTT_PASSWORD = "tenant-b-mqtt-password-7f3a91"
ENGINE_TOKEN = "engine-admin-token-c0ffee42"
SECRETS = (MQTT_PASSWORD, ENGINE_TOKEN)
TAB_A = {"id": "ta", "type": "tab", "label": "tenant a"}
TAB_B = {"id": "tb", "type": "tab", "label": "tenant b"}
BROKER = {"id": "broker-b", "type": "mqtt-broker", "z": "tb", "name": "b", "broker": "127.0.0.1", "port": 1}
CATCH = {"id": "c", "type": "catch", "z": "ta", "x": 1, "y": 1, "scope": None, "wires": [["err"]]}
SINK = {"id": "err", "type": "junction", "z": "ta", "x": 1, "y": 1, "wires": [[]]}
DEBUG = {
    "id": "d",
    "type": "debug",
    "z": "ta",
    "x": 1,
    "y": 1,
    "wires": [],
    "active": True,
    "tosidebar": True,
    "console": True,
    "tostatus": False,
    "complete": "true",
    "targetType": "full",
}


def attacker(body: str) -> dict:
    return {
        "id": "f",
        "type": "python function",
        "z": "ta",
        "x": 1,
        "y": 1,
        "func": body,
        "outputs": 1,
        "wires": [["d"]],
    }


def steal(expression_body: str) -> str:
    """A node body that runs `expression_body` (a function body) and sends what it returns."""
    inner = "\n".join("    " + line for line in expression_body.strip("\n").splitlines())
    return f"def attack():\n{inner}\nmsg['payload'] = attack()\nreturn msg"


# --- the corpus: (technique, body of `attack()`) ----------------------------------------------------------

REPORTED = [  # the two escapes as reported, verbatim
    (
        "type(type(msg)) and deepcopy memo",
        """
import copy
T = type(type(msg))
m = {}
try:
    copy.deepcopy(node, m)
except Exception:
    pass  # the runtime's locks do not copy; memo[id(memo)] holds what was reached before
for v in m.values():
    if isinstance(v, list):
        for x in v:
            if isinstance(x, dict) and x.get('id') == 'broker-b' and 'credentials' in x:
                return x['credentials']
""",
    ),
    (
        "UserString.format",
        """
import collections
return collections.UserString("{0._node._engine.nodes[broker-b].credentials}").format(node)
""",
    ),
]

CORPUS = REPORTED + [
    # format strings
    ("str.format", "return '{0._node._engine.nodes[broker-b].credentials}'.format(node)"),
    ("str.format_map", "return '{n._node.credentials}'.format_map({'n': node})"),
    ("format via getattr", "return getattr('{0._node}', 'for' + 'mat')(node)"),
    ("unbound str.format", "return str.format('{0._node}', node)"),
    (
        "UserString.format_map",
        "import collections\nreturn collections.UserString('{n._node}').format_map({'n': node})",
    ),
    ("string.Formatter", "import string\nreturn string.Formatter().format('{0._node}', node)"),
    (
        "from string import Formatter",
        "from string import Formatter\nreturn Formatter().vformat('{0._node}', [node], {})",
    ),
    ("string.Template dotted", "import string\nreturn string.Template('${n._node}').substitute(n=node)"),
    ("string.Template key", "import string\nreturn string.Template('$n').substitute(n=node)"),
    ("% with a mapping", "return '%(_node)s' % {'_node': node}"),
    ("builtin format()", "return format(node, '')"),
    ("join of foreign objects", "return ''.join([node, flow])"),
    ("f-string of a private", "return f'{node._node}'"),
    # type, __class__, __subclasses__
    ("type of type", "return type(type(msg))"),
    ("type() three args", "return type('X', (), {'y': 1})"),
    ("type of the facade", "return type(node)(node)"),
    ("mro to object", "return int.mro()[-1]"),
    ("generic alias mro", "return list[int].mro()"),
    ("functools.GenericAlias mro", "import functools\nreturn functools.GenericAlias(dict, ()).mro()"),
    ("__class__ chain", "return ().__class__.__bases__[0].__subclasses__()"),
    ("__subclasses__ by getattr", "return getattr(getattr(1, '__cl' + 'ass__'), '__subclasses__')()"),
    ("vars", "return vars(node)"),
    ("dir", "return dir(node)"),
    ("object builtin", "return object.__subclasses__()"),
    ("super", "return super(type(node), node)"),
    # frames, generators, coroutines, tracebacks, exceptions
    ("generator frame", "def g():\n    yield 1\nreturn g().gi_frame.f_back.f_globals"),
    ("generator code", "def g():\n    yield 1\nreturn getattr(g(), 'gi_' + 'code')"),
    ("async coroutine frame", "async def c():\n    pass\nreturn c().cr_frame"),
    (
        "traceback frame",
        "try:\n    1 / 0\nexcept Exception as e:\n    return e.__traceback__.tb_frame.f_back.f_locals",
    ),
    (
        "exception context",
        "try:\n    try:\n        node.nope\n    except Exception:\n        1 / 0\n"
        "except Exception as e:\n    return e.__context__",
    ),
    ("AttributeError.obj", "try:\n    flow.nope\nexcept AttributeError as e:\n    return e.obj"),
    (
        "tb via getattr",
        "try:\n    1 / 0\nexcept Exception as e:\n    return getattr(e, '__trace' + 'back__')",
    ),
    # decorators
    ("functools.wraps", "import functools\n@functools.wraps(node)\ndef f():\n    pass\nreturn f._node"),
    ("update_wrapper", "import functools\ndef f():\n    pass\nreturn functools.update_wrapper(f, node)"),
    ("total_ordering", "import functools, string\nreturn functools.total_ordering(string.Template)"),
    ("decorator type", "@type\ndef f():\n    pass\nreturn f"),
    # copy, pickle, copyreg
    ("deepcopy memo without type", "import copy\nm = {}\ncopy.deepcopy(node, m)\nreturn m"),
    ("deepcopy of the facade", "import copy\nreturn copy.deepcopy(node)"),
    ("copy of the facade", "import copy\nreturn copy.copy(env)"),
    ("copy.copyreg", "import copy\nreturn copy.copyreg.dispatch_table"),
    ("copy.dispatch_table", "import copy\nreturn copy.dispatch_table"),
    ("re.copyreg", "import re\nreturn re.copyreg.dispatch_table"),
    ("import pickle", "import pickle\nreturn pickle.dumps(node)"),
    ("import copyreg", "import copyreg\nreturn copyreg"),
    ("from copy import", "from copy import _reconstruct\nreturn _reconstruct"),
    (
        "deepcopy defaultdict factory",
        "import copy, collections\nreturn copy.deepcopy(collections.defaultdict(node.send))",
    ),
    # descriptors and unbound methods
    ("property fget", "import statistics\nreturn statistics.NormalDist.mean.fget(node)"),
    ("unbound Python method", "import statistics\nreturn statistics.NormalDist.pdf(node, 1)"),
    ("unbound UserDict method", "import collections\nreturn collections.UserDict.get(node, '_node')"),
    (
        "property by getattr",
        "import fractions\nreturn getattr(fractions.Fraction.numerator, 'fg' + 'et')(node)",
    ),
    ("getset descriptor", "import datetime\nreturn getattr(datetime.timedelta.days, 'obj' + 'class')"),
    # getattr with computed names, operator, functools, itertools, sorted, map
    ("getattr computed", "return getattr(node, '_' + 'node')"),
    ("getattr via map", "return list(map(getattr, [node], ['_node']))"),
    ("getattr via reduce", "import functools\nreturn functools.reduce(getattr, ['_node', '_engine'], node)"),
    ("getattr via partial", "import functools\nreturn functools.partial(getattr, node)('_node')"),
    ("getattr via starmap", "import itertools\nreturn list(itertools.starmap(getattr, [(node, '_node')]))"),
    ("sorted key", "return sorted([node], key=lambda n: getattr(n, '_node'))"),
    ("operator.attrgetter", "import operator\nreturn operator.attrgetter('_node._engine')(node)"),
    ("operator.methodcaller", "import operator\nreturn operator.methodcaller('__reduce_ex__', 4)(node)"),
    ("operator.setitem", "import operator\noperator.setitem(flow, 'x', 1)"),
    ("namedtuple exec", "import collections\nreturn collections.namedtuple('P', ['a'])"),
    ("namedtuple re-exported", "import functools\nreturn functools.namedtuple('P', ['a'])"),
    ("hasattr private", "return hasattr(node, '_node')"),
    # json hooks, re callbacks, random
    ("json default", "import json\nreturn json.dumps(node, default=lambda o: getattr(o, '_node'))"),
    ("re callback", "import re\nreturn re.sub('x', lambda m: getattr(m, '_node'), 'x')"),
    ("random.Random unbound", "import random\nreturn random.Random.random(node)"),
    ("random seed", "import random\nrandom.seed(1)"),
    # __builtins__ and imports
    ("__builtins__", "return __builtins__['eval']"),
    ("getattr __builtins__", "return getattr(attack, '__glob' + 'als__')['__builtins__']"),
    ("__import__", "return __import__('os')"),
    ("import os", "import os\nreturn os.environ"),
    ("importlib", "import importlib\nreturn importlib.import_module('os')"),
    ("relative import", "from . import sandbox\nreturn sandbox"),
    ("private submodule", "import zoneinfo._tzpath\nreturn zoneinfo"),
    ("command-line submodule", "from json import tool\nreturn tool"),
    ("module attribute module", "import uuid\nreturn uuid.os.environ"),
    ("decimal default context", "import decimal\nreturn decimal.DefaultContext"),
    ("base64 main", "import base64\nreturn base64.main()"),
    ("eval", "return eval('1')"),
    ("compile", "return compile('1', 'x', 'eval')"),
    # facades' public surface
    ("context parent chain", "return [flow.parent, context.name, global_.keys()]"),
    ("node facade public", "return [node.id, node.name, node.outputs]"),
]


def _walk(value: Any, depth: int = 0):
    yield value
    if depth > 6:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(k, depth + 1)
            yield from _walk(v, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from _walk(v, depth + 1)


_GIVEN = ("ScriptNode", "_Env", "ContextScope")  # what the node hands to its body on purpose


def privates(value: Any) -> list[str]:
    """What in `value` a body must never get: secrets, runtime objects, modules, frames, classes."""
    found = []
    for item in _walk(value):
        cls = type(item)
        text = item if isinstance(item, str) else ""
        if any(secret in text for secret in SECRETS):
            found.append(f"secret in {text!r}")
        elif (
            isinstance(item, types.ModuleType) and item.__name__.split(".")[0] not in DEFAULT_ALLOWED_MODULES
        ):
            found.append(f"module {item.__name__}")
        elif isinstance(item, (types.FrameType, types.TracebackType, types.CodeType)):
            found.append(f"{cls.__name__} object")
        elif item is type or item is object:
            found.append(repr(item))
        elif cls.__module__.split(".")[0] in ("runtime", "nodes") and cls.__name__ not in _GIVEN:
            found.append(f"{cls.__module__}.{cls.__name__} object")
        elif isinstance(item, dict) and any(k in item for k in ("_node", "_engine", "_manager")):
            found.append("an object's __dict__")
    return found


def _texts(t: FlowTester, *extra: Any) -> str:
    return repr([t.outputs("f"), t.outputs("err"), t.debug, t.logs, *extra])


async def run_attack(registry, body: str) -> tuple[str, list[dict], list[Any]]:
    """Deploy the attack beside tenant b's broker; ("refused at deploy" | "ran", errors, payloads)."""
    flows = [TAB_A, TAB_B, BROKER, attacker(body), CATCH, SINK, DEBUG]
    tester = FlowTester(flows, registry, credentials={"broker-b": {"user": "b", "password": MQTT_PASSWORD}})
    tester.engine.admin_token = ENGINE_TOKEN
    try:
        async with tester as t:
            assert t.node("broker-b").credentials["password"] == MQTT_PASSWORD  # planted
            t.inject("f", {"payload": 1, "topic": "attack"})
            await t.idle()
            text = _texts(t)
            payloads = t.payloads("f")
            errors = [m["error"] for m in t.outputs("err")[0]]
    except FlowValidationError as exc:
        text = str(exc)
        assert not any(secret in text for secret in SECRETS)
        return "refused at deploy", [{"message": text}], []
    assert not any(secret in text for secret in SECRETS), text
    return "ran", errors, payloads


@pytest.mark.parametrize("technique, body", CORPUS, ids=[c[0] for c in CORPUS])
async def test_escape_attempt_is_refused_or_gets_nothing_private(registry, technique: str, body: str) -> None:
    outcome, errors, payloads = await run_attack(registry, steal(body))
    assert privates(payloads) == []
    if outcome == "ran" and not errors:  # it ran to the end: only what the node gives on purpose came back
        assert technique in _HARMLESS, f"{technique}: {payloads!r}"


_HARMLESS = {  # attempts that run and return public values only
    "string.Template key",
    "% with a mapping",
    "context parent chain",
    "node facade public",
}


@pytest.mark.parametrize("technique, body", REPORTED, ids=[c[0] for c in REPORTED])
async def test_the_reported_escapes_are_refused_by_the_sandbox(registry, technique: str, body: str) -> None:
    outcome, errors, payloads = await run_attack(registry, steal(body))
    assert outcome == "ran" and payloads == [] and len(errors) == 1
    assert "not available in python function nodes" in errors[0]["message"] or (
        "not allowed in python function nodes" in errors[0]["message"]
    )


# --- generated attempts ---------------------------------------------------------------------------------

RECEIVERS = [
    "msg",
    "node",
    "context",
    "flow",
    "global_",
    "env",
    "type(msg)",
    "exc",
    "gen",
    "fn",
    "node.send",
    "copy",
    "json",
    "string",
    "collections.UserString('x')",
    "list[int]",
    "functools.partial(fn)",
]
NAMES = [
    "__class__",
    "__dict__",
    "_node",
    "_engine",
    "_manager",
    "__globals__",
    "gi_frame",
    "gi_code",
    "f_back",
    "f_globals",
    "tb_frame",
    "__traceback__",
    "__context__",
    "mro",
    "format",
    "format_map",
    "__subclasses__",
    "__reduce_ex__",
    "__self__",
    "__func__",
    "__wrapped__",
    "func",
    "args",
    "obj",
    "credentials",
    "nodes",
    "parent",
    "copyreg",
    "os",
    "sys",
    "registry",
    "__builtins__",
    "__init__",
    "__getattribute__",
    "fget",
    "__origin__",
    "dispatch_table",
    "__mro__",
    "__bases__",
    "__module__",
]
STEPS = st.one_of(
    st.sampled_from(NAMES).map(lambda n: ("attr", n)),
    st.sampled_from(NAMES).map(lambda n: ("getattr", n)),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(lambda ns: ("format", ".".join(ns))),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(lambda ns: ("userstring", ".".join(ns))),
    st.sampled_from(["deepcopy_memo", "deepcopy", "type", "call", "index0", "vars", "reduce_getattr"]).map(
        lambda s: (s, "")
    ),
)


def compose(receiver: str, steps: list[tuple[str, str]]) -> str:
    expr = receiver
    for kind, arg in steps:
        half = len(arg) // 2
        expr = {
            "attr": f"{expr}.{arg}",
            "getattr": f"getattr({expr}, {arg[:half]!r} + {arg[half:]!r})",
            "format": f"'{{0.{arg}}}'.format({expr})",
            "userstring": f"collections.UserString('{{0.{arg}}}').format({expr})",
            "deepcopy_memo": f"copy.deepcopy({expr}, memo)",
            "deepcopy": f"copy.deepcopy({expr})",
            "type": f"type({expr})",
            "call": f"{expr}()",
            "index0": f"list({expr})[0]",
            "vars": f"vars({expr})",
            "reduce_getattr": f"functools.reduce(getattr, ['_node', '_engine'], {expr})",
        }[kind]
    return expr


PRELUDE = """import copy
import collections
import functools
import json
import string
memo = {}
fn = lambda: 1
gen = (i for i in [1])
try:
    1 / 0
except Exception as caught:
    exc = caught
"""


@pytest.fixture(scope="module")
def deployed():
    """One deployed engine (secrets planted) whose attacker node's own variables the generated bodies get."""
    import asyncio

    from sofiaflow.runtime.flows.registry import default_registry

    loop = asyncio.new_event_loop()
    tester = FlowTester(
        [TAB_A, TAB_B, BROKER, attacker("return msg"), CATCH, SINK, DEBUG],
        default_registry(),
        credentials={"broker-b": {"user": "b", "password": MQTT_PASSWORD}},
    )
    tester.engine.admin_token = ENGINE_TOKEN
    loop.run_until_complete(tester.__aenter__())
    yield tester
    loop.run_until_complete(tester.__aexit__(None, None, None))
    loop.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    receiver=st.sampled_from(RECEIVERS),
    steps=st.lists(STEPS, min_size=1, max_size=3),
    last=st.sampled_from(["", ".credentials", "['_node']", ".nodes"]),
)
def test_generated_attempts_never_reach_private_state(deployed, receiver, steps, last) -> None:
    node = deployed.node("f")
    expression = compose(receiver, steps)
    body = PRELUDE + f"msg['payload'] = {expression}{last}\nreturn msg"
    try:
        script = CompiledScript(body, name="attack", time_limit=2.0)
    except SandboxError:
        return  # refused at compile time
    try:
        result = node._run(script, {"payload": 1, "_msgid": "m"})
    except (NodeError, SandboxError) as exc:
        text = str(exc)
        assert not any(secret in text for secret in SECRETS), text
        return
    assert privates(result) == [], (body, result)
    assert not any(secret in repr(result) for secret in SECRETS)


def test_copy_still_copies_plain_data_and_type_answers_for_it() -> None:
    body = """
import copy, collections, datetime, decimal, fractions, uuid
shared = [1]
data = {'a': [shared, shared], 't': (1, {2}), 'd': collections.deque([1], maxlen=3),
        'c': collections.Counter('aab'), 'o': collections.OrderedDict(x=1),
        'dd': collections.defaultdict(list, k=[1]), 'when': datetime.datetime(2024, 1, 2),
        'n': decimal.Decimal('1.5'), 'f': fractions.Fraction(1, 3), 'u': uuid.UUID(int=1), 'b': bytearray(b'x')}
deep = copy.deepcopy(data)
deep['a'][0].append(2)
shallow = copy.copy(data)
return [deep == data, shared, deep['a'][0] is deep['a'][1], shallow['a'] is data['a'],
        deep['dd']['new'], deep['d'].maxlen, type(deep['c']) is collections.Counter,
        type(deep['when']) is datetime.datetime, type(1) is int, type(msg) is dict,
        f"{data['n']:.2f} {msg!r}", format(3.14159, '.2f'), copy.deepcopy(msg)]
"""
    out = CompiledScript(body).run({"msg": {"payload": [1]}})
    assert out == [
        False,
        [1],
        True,
        True,
        [],
        3,
        True,
        True,
        True,
        True,
        "1.50 {'payload': [1]}",
        "3.14",
        {"payload": [1]},
    ]
