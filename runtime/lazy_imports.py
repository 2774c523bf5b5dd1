"""Third-party imports the server does not need until first use, kept out of its memory until then.

`sofiaflow run` calls `install()` before it imports anything heavy. Two kinds of module are then loaded late:

* LAZY_INIT packages, whose `__init__` only re-exports names of its submodules (`from .client import Client`):
  the package is created without running it, and each name imports its submodule on first use (PEP 562
  `__getattr__`). python-socketio and python-engineio are such packages: NiceGUI uses their servers, while
  their `__init__` also imports their clients and message-queue managers, and with them requests, aiohttp and
  redis (about 25 MiB of an idle server).
* DEFERRED modules: the module object is registered at once (so its submodules can be imported), and its body
  runs the first time one of its own names is looked up. NiceGUI imports `redis` and `redis.asyncio` for a
  storage the editor does not use; cluster mode (runtime/cluster) imports them for real, and they load then.
  The network nodes import `httpx` (with rich, pygments and click, which its command line imports), used
  only once a request is sent.

Behaviour is that of a plain import, only later: an import error of a deferred module surfaces at first use.
A package whose `__init__` is anything more than re-exports is run as usual (checked with `ast` each time), so a
new release of a library can make this cost more memory, never break it.
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
DEFERRED: tuple[str, ...] = ("redis", "redis.asyncio", "httpx")

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


def _run_deferred(module: types.ModuleType) -> None:
    with _lock:
        if type(module) is not _Deferred:
            return
        module.__class__ = types.ModuleType
        loader = module.__dict__.pop("__deferred_loader__")
        module.__loader__ = loader
        if module.__spec__ is not None:
            module.__spec__.loader = loader
        loader.exec_module(module)


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

    def __init__(self, lazy_init: Sequence[str] = LAZY_INIT, deferred: Sequence[str] = DEFERRED) -> None:
        self.lazy_init = frozenset(lazy_init)
        self.deferred = frozenset(deferred)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.lazy_init and fullname not in self.deferred:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        if fullname in self.deferred:
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
