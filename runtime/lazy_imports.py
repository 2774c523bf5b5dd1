"""Third-party imports the server does not need until first use, kept out of its memory until then.

`sofiaflow run` calls `install()` before it imports anything heavy. Two kinds of module are then loaded late:

* LAZY_INIT packages, whose `__init__` only re-exports names of its submodules (`from .client import Client`):
  the package is created without running it, and each name imports its submodule on first use (PEP 562
  `__getattr__`). python-socketio and python-engineio are such packages: NiceGUI uses their servers, while
  their `__init__` also imports their clients and message-queue managers, and with them requests, aiohttp and
  redis (about 25 MiB of an idle server).
* DEFERRED modules: the module object is registered at once, and its body runs the first time one of its own
  names is looked up, or one of its submodules other than the deferred and ALONE ones is imported. NiceGUI
  imports `redis` and `redis.asyncio` for a storage the editor does not use; cluster mode (runtime/cluster)
  imports them for real, and they load then.
  The network nodes import `httpx` (with rich, pygments and click, which its command line imports), used
  only once a request is sent. The MQTT nodes' MQTT 3.1.1 client is their own: aiomqtt and paho's client (with
  dnspython) load with the first MQTT 5 or websocket connection.

Behaviour is that of a plain import, only later: an import error of a deferred module surfaces at first use.
A LAZY_INIT package whose `__init__` is anything more than re-exports is run as usual (checked with `ast` at each
import), so a new release of such a library costs memory rather than breaking; tests/test_late_imports.py uses
each DEFERRED module first in the ways the code base does.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

LAZY_INIT: tuple[str, ...] = ("socketio", "engineio")
DEFERRED: tuple[str, ...] = ("redis", "redis.asyncio", "httpx", "aiomqtt", "paho.mqtt.client")
ALONE: tuple[str, ...] = ("aiomqtt.exceptions",)
"""Submodules of a deferred package that may run before it (they use none of its names): any other submodule
runs its deferred packages first, in the order of a plain import."""

_lock = threading.RLock()


def _exports(source: str, package: str) -> dict[str, tuple[str, str, bool]] | None:
    """{name: (submodule, attribute, optional)} of an `__init__` made only of relative re-exports, else None.

    Allowed statements: a docstring, `__all__ = [...]`, `from .sub import A, B as C`, and
    `try: from .sub import A` / `except ImportError: A = None` (an optional name, None when its import fails).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names: dict[str, tuple[str, str, bool]] = {}

    def add(node: ast.stmt, optional: bool) -> bool:
        if not isinstance(node, ast.ImportFrom) or node.level != 1 or not node.module:
            return False
        for alias in node.names:
            if alias.name == "*":
                return False
            names[alias.asname or alias.name] = (f"{package}.{node.module}", alias.name, optional)
        return True

    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if (
            isinstance(stmt, ast.Assign)
            and [getattr(t, "id", None) for t in stmt.targets] == ["__all__"]
            and isinstance(stmt.value, ast.List | ast.Tuple)
        ):
            continue
        if isinstance(stmt, ast.Try) and not stmt.orelse and not stmt.finalbody:
            handler_ok = (
                len(stmt.handlers) == 1 and getattr(stmt.handlers[0].type, "id", None) == "ImportError"
            )
            if not handler_ok or not all(add(s, True) for s in stmt.body):
                return None
            for s in stmt.handlers[0].body:
                if not (
                    isinstance(s, ast.Assign)
                    and isinstance(s.value, ast.Constant)
                    and s.value.value is None
                    and all(getattr(t, "id", None) in names for t in s.targets)
                ):
                    return None
            continue
        if not add(stmt, False):
            return None
    return names


class _LazyInitLoader(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader, exports: dict[str, tuple[str, str, bool]]) -> None:
        self.real = real
        self.exports = exports

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        exports = self.exports
        module.__loader__ = self.real
        if module.__spec__ is not None:
            module.__spec__.loader = self.real

        def __getattr__(name: str) -> Any:
            if name not in exports:  # a submodule: the plain __init__ would have imported it by now
                if name.startswith("__") or importlib.util.find_spec(f"{module.__name__}.{name}") is None:
                    raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
                return importlib.import_module(f"{module.__name__}.{name}")
            sub, attr, optional = exports[name]
            try:
                value = getattr(importlib.import_module(sub), attr)
            except ImportError:
                if not optional:
                    raise
                value = None
            setattr(module, name, value)
            return value

        def __dir__() -> list[str]:
            return sorted(set(module.__dict__) | set(exports))

        module.__getattr__ = __getattr__  # type: ignore[method-assign]
        module.__dir__ = __dir__  # type: ignore[method-assign]


class _Deferred(types.ModuleType):
    """A module whose body has not run yet: the first lookup of a name it lacks runs it."""

    def __getattr__(self, name: str) -> Any:
        _run_deferred(self)
        return types.ModuleType.__getattribute__(self, name)


_resumable: dict[str, types.ModuleType] = {}
"""Deferred submodules of a package whose body is running: its imports of them run them, as a plain import would."""
_running: set[str] = set()
"""Deferred packages whose body is running: what they import under them is imported as usual."""


def _run_deferred(module: types.ModuleType) -> None:
    with _lock:
        _run_deferred_parents(module.__name__)  # a plain import runs a package before its submodules
        if type(module) is not _Deferred:
            return
        name = module.__name__
        # its deferred submodules count as not imported yet while it runs: the body imports them in its own order
        children = {n: m for n, m in sys.modules.items() if n.startswith(name + ".") and type(m) is _Deferred}
        hidden = {}
        for child in children:
            del sys.modules[child]
            parent, _, attr = child.rpartition(".")
            holder = sys.modules.get(parent)
            if holder is not None and holder.__dict__.get(attr) is children[child]:
                hidden[child] = (holder, attr)
                del holder.__dict__[attr]
        _resumable.update(children)
        module.__class__ = types.ModuleType
        loader = module.__dict__.pop("__deferred_loader__")
        module.__loader__ = loader
        if module.__spec__ is not None:
            module.__spec__.loader = loader
        _running.add(name)
        try:
            loader.exec_module(module)
        finally:
            _running.discard(name)
            for child, child_module in children.items():
                _resumable.pop(child, None)
                if child not in sys.modules:  # not imported by the body: deferred as before
                    sys.modules[child] = child_module
                    if child in hidden:
                        holder, attr = hidden[child]
                        holder.__dict__.setdefault(attr, child_module)


class _Resume(importlib.abc.Loader):
    """Runs a deferred module when its package's body imports it (the same module object)."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        _run_deferred(module)


def _run_deferred_parents(fullname: str) -> bool:
    """Run the deferred packages `fullname` is in, outermost first; whether there was one."""
    parts = fullname.split(".")
    ran = False
    for i in range(1, len(parts)):
        parent = sys.modules.get(".".join(parts[:i]))
        if parent is not None and type(parent) is _Deferred:
            _run_deferred(parent)
            ran = True
    return ran


class _Existing(importlib.abc.Loader):
    """Hands the import system a module that running its package just imported, so that it does not run twice.

    The import system loads by the spec of a module already in sys.modules: the module carries this loader's spec
    until then, and gets its own back."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.own_spec = module.__spec__

    def spec(self) -> importlib.machinery.ModuleSpec:
        spec = importlib.util.spec_from_loader(self.module.__name__, self)
        assert spec is not None
        self.module.__spec__ = spec
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.own_spec


class _DeferredLoader(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        module.__deferred_loader__ = self.real  # type: ignore[attr-defined]
        module.__class__ = _Deferred


class LateImports(importlib.abc.MetaPathFinder):
    """The finder that loads the `lazy_init` packages and the `deferred` modules late (see the module's doc)."""

    def __init__(
        self,
        lazy_init: Sequence[str] = LAZY_INIT,
        deferred: Sequence[str] = DEFERRED,
        alone: Sequence[str] = ALONE,
    ) -> None:
        self.lazy_init = frozenset(lazy_init)
        self.deferred = frozenset(deferred)
        self.alone = frozenset(alone)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        resumed = _resumable.pop(fullname, None)
        if resumed is not None:
            return importlib.util.spec_from_loader(
                fullname, _Resume(resumed), is_package=hasattr(resumed, "__path__")
            )
        if fullname not in self.lazy_init and fullname not in self.deferred:
            # any other submodule of a deferred package: the package runs first, as in a plain import
            if fullname not in self.alone and _run_deferred_parents(fullname) and fullname in sys.modules:
                return _Existing(sys.modules[fullname]).spec()
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        if fullname in self.deferred:
            if any(fullname.startswith(running + ".") for running in _running):
                return spec  # imported by its running package: at once, as usual
            spec.loader = _DeferredLoader(spec.loader)
            return spec
        try:
            source = spec.loader.get_source(fullname)
        except (ImportError, OSError):
            return spec
        exports = _exports(source or "", fullname)
        if exports is not None:
            spec.loader = _LazyInitLoader(spec.loader, exports)
        return spec


_finder = LateImports()


def install() -> None:
    """Load LAZY_INIT and DEFERRED modules late from now on (those already imported stay as they are)."""
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def loaded(name: str) -> bool:
    """Whether module `name` has been imported and its body has run (False for a deferred module not yet used)."""
    module = sys.modules.get(name)
    return module is not None and type(module) is not _Deferred
