"""The sandbox of the "python function" node: user-written bodies run under RestrictedPython.

`sandbox_policy.Policy` checks and rewrites a body at compile time (on the user's line numbers), `_Guards` are the
run-time hooks the rewritten code calls, `CompiledScript` wraps the body in a function of the names
the node passes (msg, node, context, flow, global_, env), compiles it once and runs it.
Loop iterations, comprehension items and helper or lambda calls tick the script's clock (one per
script: do not run a script in several threads at once); past the time limit every tick raises, so
an `except` cannot keep a body going. C code that runs long by itself (a catastrophic regex,
`sum(range(10**12))`) is not interrupted. print() text is collected per function (read as `printed`)
and each line goes to `on_print` if given.

What a body reaches is held to public, plain things: no `_` names; `type()` and `format()` only for plain
data (`sandbox_plain`); `import copy` gives a copy of plain data without `memo`; `format`, `format_map`
and `mro` are refused on every object (format strings read attributes); no unbound Python methods (they
run on any `self`), no descriptor, frame or code objects, no modules outside the allow-list or with `_`
in their name, and the helpers in `_DENIED_MODULE_ATTRS` under whatever name a module re-exports them.
This is a language layer: the process boundary around it still has to stop C loops and memory use.
"""

from __future__ import annotations

import ast
import builtins
import collections
import copy
import functools
import importlib
import inspect
import keyword
import operator
import time
import types
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from RestrictedPython.Guards import safe_builtins
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from sofiaflow.nodes.function.sandbox_plain import PLAIN_TYPES, copy_module, is_plain_type
from sofiaflow.nodes.function.sandbox_policy import (  # the errors and allow-list are re-exported from here
    DEFAULT_ALLOWED_MODULES,
    WHERE,
    Policy,
    SandboxError,
    ScriptRefused,
    ScriptSyntaxError,
    ScriptTimeout,
    module_allowed,
)

TICKS_PER_CHECK = 1000
MAX_INT_BITS = 1_000_000  # about 300,000 decimal digits
MAX_SEQUENCE_ITEMS = 10_000_000
_MISSING = object()


class _Printer:
    """The target of print(): collects the text (read as `printed`) and forwards each line."""

    def __init__(self, hook: Callable[[str], object] | None) -> None:
        self.parts: list[str] = []
        self.hook = hook

    def _call_print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n") -> None:
        text = (" " if sep is None else sep).join(map(str, objects))
        self.parts.append(text + ("\n" if end is None else end))
        if self.hook is not None:
            self.hook(text)

    def __call__(self) -> str:
        return "".join(self.parts)


_SEQUENCES = frozenset({str, bytes, bytearray, list, tuple, collections.deque})  # exact types: fast
_WRITABLE = (dict, list, bytearray, collections.deque)
_INPLACE = dict(
    zip(
        "+= -= *= /= %= **= <<= >>= |= ^= &= //= @=".split(),
        (
            operator.iadd,
            operator.isub,
            operator.imul,
            operator.itruediv,
            operator.imod,
            operator.ipow,
            operator.ilshift,
            operator.irshift,
            operator.ior,
            operator.ixor,
            operator.iand,
            operator.ifloordiv,
            operator.imatmul,
        ),
        strict=True,
    )
)
_DENIED_MODULE_ATTRS = {  # they would defeat the guards, change the host's state, or run long in C
    ("operator", "attrgetter"),
    ("operator", "methodcaller"),
    ("functools", "update_wrapper"),
    ("functools", "wraps"),
    ("functools", "total_ordering"),
    ("string", "Formatter"),
    ("collections", "namedtuple"),
    ("decimal", "getcontext"),
    ("decimal", "setcontext"),
    ("decimal", "DefaultContext"),
    ("decimal", "BasicContext"),
    ("decimal", "ExtendedContext"),
    ("random", "seed"),
    ("random", "setstate"),
    ("zoneinfo", "reset_tzpath"),
    ("hashlib", "pbkdf2_hmac"),
    ("hashlib", "scrypt"),
    ("uuid", "getnode"),
    ("uuid", "uuid1"),
    ("base64", "main"),
    ("base64", "test"),
}  # command lines: they read the server's argv, stdin and files
_DENIED_VALUES = {  # the same objects under every name (functools.namedtuple is collections.namedtuple)
    id(getattr(importlib.import_module(module), name)): f"{module}.{name}"
    for module, name in _DENIED_MODULE_ATTRS
}
_REFUSED_NAMES = frozenset({"format", "format_map", "mro"})  # on every object: format strings read attributes
_OPAQUE = (  # objects whose attributes lead to frames, code, or functions to call on foreign objects
    types.FrameType,
    types.TracebackType,
    types.CodeType,
    property,
    functools.cached_property,
    functools.partialmethod,
    functools.singledispatchmethod,
    types.MemberDescriptorType,
    types.GetSetDescriptorType,
)
_HOST_BUILTINS = frozenset(
    map(
        id,
        (  # never handed to a body, whichever module re-exports them
            type,
            object,
            super,
            vars,
            dir,
            getattr,
            setattr,
            delattr,
            hasattr,
            eval,
            exec,
            compile,
            open,
            globals,
            locals,
            builtins.__import__,
            breakpoint,
            input,
            memoryview,
            classmethod,
            staticmethod,
            property,
            format,
        ),
    )
)
_UNAVAILABLE = frozenset(
    {
        "open",
        "eval",
        "exec",
        "compile",
        "globals",
        "locals",
        "vars",
        "dir",
        "input",
        "help",
        "exit",
        "quit",
        "memoryview",
        "super",
        "object",
        "classmethod",
        "staticmethod",
        "property",
        "aiter",
        "anext",
        "breakpoint",
        "__import__",
        "BaseException",
        "SystemExit",
        "KeyboardInterrupt",
    }
)
_BASE_BUILTINS = {
    k: v
    for k, v in safe_builtins.items()
    if k not in _UNAVAILABLE and k not in ("__build_class__", "_getattr_", "GeneratorExit")
}
_BASE_BUILTINS.update(
    {
        name: getattr(builtins, name)
        for name in (
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "bytes",
            "bytearray",
            "enumerate",
            "zip",
            "map",
            "filter",
            "reversed",
            "iter",
            "next",
            "sum",
            "min",
            "max",
            "sorted",
            "any",
            "all",
            "format",
            "ascii",
            "bin",
            "NotImplemented",
            "RecursionError",
            "TimeoutError",
            "ConnectionError",
            "ModuleNotFoundError",
        )
    }
)


def _is_static(cls: type, name: str) -> bool:
    """True when `cls.name` is a staticmethod (a function that takes no instance)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return isinstance(klass.__dict__[name], staticmethod)
    return False


def _check_name(name: Any) -> str:
    if type(name) is not str or name.startswith("_") or name in INSPECT_ATTRIBUTES:
        raise ScriptRefused(f"attribute {name!r} is not accessible {WHERE}")
    return name


def _sized(op: str, a: Any, b: Any, apply: Callable[[Any, Any], Any]) -> Any:
    """`apply(a, b)` for `a <op> b` (op: * ** << + pow), refused if the result would be huge."""
    bits = items = 0
    if op == "*":
        if isinstance(a, int) and isinstance(b, int):
            bits = a.bit_length() + b.bit_length()
        elif type(a) in _SEQUENCES or type(b) in _SEQUENCES:
            items = len(a) * b if isinstance(b, int) else len(b) * a if isinstance(a, int) else 0
    elif op == "+":
        items = len(a) + len(b) if type(a) in _SEQUENCES and type(b) in _SEQUENCES else 0
    elif op == "**" and isinstance(b, int) and b > 1 and isinstance(a, (int, Fraction)):
        bits = (max(a.numerator.bit_length(), a.denominator.bit_length()) - 1) * b
    elif op == "<<" and isinstance(a, int) and isinstance(b, int) and a and b > 0:
        bits = a.bit_length() + b
    elif op == "pow" and isinstance(a, int) and isinstance(b, int):  # pow(base, a, b)
        bits = a.bit_length() * b.bit_length() // 64
    if bits > MAX_INT_BITS:
        raise ScriptRefused(f"integer result too large (about {bits} bits, limit {MAX_INT_BITS})")
    if items > MAX_SEQUENCE_ITEMS:
        raise ScriptRefused(f"sequence too large ({items} items, limit {MAX_SEQUENCE_ITEMS})")
    return apply(a, b)


def _write_attr(obj: Any, what: str = "attributes") -> Any:
    if hasattr(obj, "_guarded_writes"):  # RestrictedPython's opt-in for writable objects
        return obj
    raise ScriptRefused(f"cannot change {what} of {type(obj).__name__!r} objects {WHERE}")


def _write_item(obj: Any) -> Any:
    return obj if type(obj) is dict or isinstance(obj, _WRITABLE) else _write_attr(obj, "items")


class _Guards:
    """The run-time hooks of one script: the names `Policy`'s rewritten code calls, and its clock."""

    __slots__ = (
        "allowed_modules",
        "limit",
        "on_print",
        "budget",
        "deadline",
        "expired",
        "copy_module",
        "substitutes",
    )

    def __init__(
        self, allowed_modules: frozenset[str], time_limit: float, on_print: Callable[[str], object] | None
    ) -> None:
        self.allowed_modules, self.limit, self.on_print = allowed_modules, time_limit, on_print
        self.budget, self.deadline, self.expired = -1, None, False  # the clock: idle
        self.copy_module = copy_module(self.tick, ScriptRefused)  # `import copy` gets this
        self.substitutes = {  # guarded stand-ins for functions modules hand out
            id(time.sleep): self.sleep,
            id(operator.setitem): self.op_setitem,
            id(operator.delitem): self.op_delitem,
            id(copy.copy): self.copy_module.copy,
            id(copy.deepcopy): self.copy_module.deepcopy,
        }

    def timeout(self) -> ScriptTimeout:
        self.expired = True
        return ScriptTimeout(f"script exceeded its time limit of {self.limit} s")

    def check(self) -> None:
        if self.deadline is None:
            raise ScriptRefused("python function code can only run inside CompiledScript.run() or call()")
        if time.monotonic() >= self.deadline:
            raise self.timeout()  # the budget stays negative: every later tick raises again
        self.budget = TICKS_PER_CHECK

    def tick(self) -> None:
        budget = self.budget = self.budget - 1
        if budget < 0:
            self.check()

    def sleep(self, seconds: float) -> None:
        remaining = (self.deadline or self.check() or 0) - time.monotonic()
        if seconds < remaining:
            return time.sleep(seconds)
        time.sleep(max(0.0, remaining))
        raise self.timeout()

    def attr(self, obj: Any, name: str) -> Any:
        """`_getattr_`: `obj.name` in the source, whose name the policy has checked already."""
        target = obj.__origin__ if isinstance(obj, types.GenericAlias) else obj  # `list[int].x` reads list.x
        if name in _REFUSED_NAMES:
            what = f"str.{name}() and every other {name}() (use f-strings)" if name != "mro" else "mro()"
            raise ScriptRefused(f"{what} is not allowed {WHERE}")
        if name == "register" and isinstance(target, type):
            raise ScriptRefused(f"registering virtual subclasses is not allowed {WHERE}")
        if isinstance(target, _OPAQUE) or (name == "obj" and isinstance(obj, AttributeError)):
            raise ScriptRefused(f"attributes of {type(target).__name__!r} objects are not accessible {WHERE}")
        if isinstance(obj, types.ModuleType):
            return self.module_attr(obj, name)
        value = getattr(obj, name)
        if (
            isinstance(target, type)
            and isinstance(value, types.FunctionType)
            and not _is_static(target, name)
        ):
            raise ScriptRefused(  # it would run on any object passed as `self`, private attributes included
                f"{target.__name__}.{name} is a method: call it on an instance {WHERE}"
            )
        return self.vetted(value)

    def vetted(self, value: Any) -> Any:
        """`value` if a body may hold it: allowed modules, no frames, no unguarded builtins."""
        if isinstance(value, types.ModuleType):
            return self.module(value)
        substitute = self.substitutes.get(id(value))
        if substitute is not None:
            return substitute
        denied = _DENIED_VALUES.get(id(value))
        if denied is not None:
            raise ScriptRefused(f"{denied} is not allowed {WHERE}")
        if id(value) in _HOST_BUILTINS or isinstance(value, (types.FrameType, types.TracebackType)):
            raise ScriptRefused(
                f"{getattr(value, '__name__', type(value).__name__)!r} is not available {WHERE}"
            )
        return value

    def getattr(self, obj: Any, name: str, *default: Any) -> Any:
        """The `getattr` builtin: the name is only known now."""
        try:
            return self.attr(obj, _check_name(name))
        except AttributeError:
            if default:
                return default[0]
            raise

    def module(self, value: types.ModuleType) -> types.ModuleType:
        if value is copy:
            value = self.copy_module  # the real one copies anything, private state included
        if not module_allowed(value.__name__, self.allowed_modules):
            raise ScriptRefused(f"module {value.__name__!r} is not available {WHERE}")
        return value

    def module_attr(self, module: types.ModuleType, name: str) -> Any:
        if (module.__name__, name) in _DENIED_MODULE_ATTRS:
            raise ScriptRefused(f"{module.__name__}.{name} is not allowed {WHERE}")
        value = getattr(module, name)
        if isinstance(value, (dict, list, set, bytearray)):
            return copy.copy(value)  # module-level containers are the host's: a script gets a copy
        return self.vetted(value)

    @staticmethod
    def op_setitem(obj: Any, key: Any, value: Any) -> None:
        """operator.setitem with the same check as `obj[key] = value`."""
        operator.setitem(_write_item(obj), key, value)

    @staticmethod
    def op_delitem(obj: Any, key: Any) -> None:
        """operator.delitem with the same check as `del obj[key]`."""
        operator.delitem(_write_item(obj), key)

    def import_(
        self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        for full in [name, *(f"{name}.{a}" for a in fromlist or ())]:
            if level or not isinstance(full, str) or not module_allowed(full, self.allowed_modules):
                raise ScriptRefused(f"import of module {full!r} is not allowed {WHERE}")
        module = self.module(builtins.__import__(name, None, None, fromlist, 0))
        # `from m import a` reads `a` from what this returns: hand over only vetted attributes
        return types.SimpleNamespace(**{a: self.getattr(module, a) for a in fromlist}) if fromlist else module

    def namespace(self) -> dict[str, Any]:
        """The globals of the script's code: the hooks under RestrictedPython's names, and builtins."""
        write_attr, write_item = _write_attr, _write_item

        def inplacevar(op: str, target: Any, value: Any) -> Any:
            return _sized(op[:-1], target, value, _INPLACE[op])

        def type_(obj: Any, *rest: Any) -> type:
            """type(x) for plain data (and builtin exceptions): other classes lead to host internals."""
            if rest:
                raise ScriptRefused(f"type() with three arguments is not allowed {WHERE}")
            cls = type(obj)
            if not is_plain_type(cls):
                raise ScriptRefused(
                    f"type() of a {cls.__name__!r} object is not available {WHERE} "
                    "(it works on plain data; use isinstance())"
                )
            return cls

        def format_(value: Any, spec: str = "") -> str:
            if type(value) not in PLAIN_TYPES:
                raise ScriptRefused(f"format() of a {type(value).__name__!r} object is not available {WHERE}")
            return format(value, spec)

        return {
            "__name__": "sofiaflow.sandbox",
            "_tick_": self.tick,
            "_getattr_": self.attr,
            "_getitem_": operator.getitem,
            "_getiter_": iter,
            "_write_": write_item,
            "_write_attr_": write_attr,
            "_inplacevar_": inplacevar,
            "_inplaceitem_": lambda obj, key, op, value: operator.setitem(
                write_item(obj), key, inplacevar(op, obj[key], value)
            ),
            "_pow_": lambda a, b: _sized("**", a, b, operator.pow),
            "_mul_": lambda a, b: _sized("*", a, b, operator.mul),
            "_lshift_": lambda a, b: _sized("<<", a, b, operator.lshift),
            "_iter_unpack_sequence_": lambda it, spec, getiter: it,  # Python's own unpacking is fine
            "_unpack_sequence_": lambda it, spec, getiter: it,
            "_apply_": lambda fn, *args, **kwargs: fn(*args, **kwargs),
            "_print_": lambda getattr_=None: _Printer(self.on_print),
            "__builtins__": {
                **_BASE_BUILTINS,
                "__import__": self.import_,
                "getattr": self.getattr,
                "type": type_,
                "format": format_,
                "pow": lambda base, exp, mod=None: (
                    _sized("**", base, exp, operator.pow)
                    if mod is None
                    else _sized("pow", exp, mod, lambda exp, mod: builtins.pow(base, exp, mod))
                ),
                "hasattr": lambda obj, name: self.getattr(obj, name, _MISSING) is not _MISSING,
                "setattr": lambda obj, name, value: setattr(write_attr(obj), _check_name(name), value),
                "delattr": lambda obj, name: delattr(write_attr(obj), _check_name(name)),
            },
        }


class CompiledScript:
    """A body compiled once (at deploy) and run many times."""

    def __init__(
        self,
        source: str,
        *,
        name: str = "<function>",
        allowed_modules: frozenset[str] = DEFAULT_ALLOWED_MODULES,
        time_limit: float = 1.0,
        on_print: Callable[[str], object] | None = None,
    ) -> None:
        self.name, self.allowed_modules, self.time_limit = name, frozenset(allowed_modules), float(time_limit)
        self._body = Policy.transform(source, name, self.allowed_modules)
        self._guards = _Guards(self.allowed_modules, self.time_limit, on_print)
        self._globals = self._guards.namespace()
        self._functions: dict[tuple[str, ...], Callable[..., Any]] = {}
        self._function_for(())  # compiler errors (e.g. 'break' outside loop) surface at deploy

    def run(self, variables: dict[str, object]) -> object:
        """Run the body with each key of `variables` as a local name; return what it returns."""
        keys = tuple(variables)
        return self._invoke(self._functions.get(keys) or self._function_for(keys), (), variables)

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call `fn`, e.g. a callback the body returned, under this script's time limit."""
        return self._invoke(fn, args, kwargs)

    def import_library(self, name: str) -> Any:
        """Module `name` as `import name` in the body gets it (for the node's `libs`), or ScriptRefused."""
        return self._guards.import_(name)

    def _invoke(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        clock = self._guards
        saved = budget, deadline, expired = clock.budget, clock.deadline, clock.expired
        clock.deadline = time.monotonic() + self.time_limit
        if deadline is not None and deadline < clock.deadline:
            clock.deadline = deadline  # a nested run of this script ends with the run around it
        clock.budget, clock.expired = TICKS_PER_CHECK, False
        try:
            result = fn(*args, **kwargs)
            if clock.expired:  # the body caught the timeout and returned
                raise clock.timeout()
            return result
        except BaseException as exc:
            if clock.expired and not isinstance(exc, (ScriptTimeout, KeyboardInterrupt)):
                raise clock.timeout() from exc
            if type(exc) is NameError and exc.name in _UNAVAILABLE:
                raise ScriptRefused(f"name {exc.name!r} is not available {WHERE}") from None
            if isinstance(exc, (Exception, KeyboardInterrupt)):
                raise
            # e.g. `raise ValueError.mro()[2]()`: keep BaseException and the like off the host
            raise ScriptRefused(f"raising {type(exc).__name__} is not allowed {WHERE}") from None
        finally:
            clock.budget, clock.deadline, clock.expired = saved

    def _function_for(self, keys: tuple[str, ...]) -> Callable[..., Any]:
        """The body as a function of these names, compiled once per distinct tuple of keys."""
        params = [
            k
            for k in keys
            if isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) and not k.startswith("_")
        ]
        args = ast.arguments(
            posonlyargs=[],
            args=[ast.arg(k) for k in params],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
            kwarg=ast.arg("_sf_unused") if len(params) < len(keys) else None,
        )
        fdef = ast.FunctionDef(
            name="python_function",
            args=args,
            body=self._body,
            decorator_list=[],
            returns=None,
            type_comment=None,
            lineno=1,
            col_offset=0,
        )
        try:
            code = compile(ast.fix_missing_locations(ast.Module([fdef], [])), self.name, "exec")
        except SyntaxError as exc:
            raise ScriptSyntaxError(f"line {exc.lineno}: {exc.msg}", exc.lineno) from None
        exec(code, self._globals)
        fn = self._globals.pop("python_function")
        if fn.__code__.co_flags & inspect.CO_GENERATOR:
            raise ScriptSyntaxError("'yield' is only allowed inside helper functions")
        self._functions[keys] = fn
        return fn


def describe_error(exc: BaseException, where: str) -> str:
    """`Type: text (line N)` of an exception raised by a body compiled as `where` (the innermost line of it)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == where:
            line = tb.tb_lineno
        tb = tb.tb_next
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{text} (line {line})" if line else text


__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "CompiledScript",
    "SandboxError",
    "ScriptRefused",
    "ScriptSyntaxError",
    "ScriptTimeout",
    "describe_error",
]
