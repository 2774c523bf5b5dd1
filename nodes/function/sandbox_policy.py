"""What a python function body may say, checked at compile time: RestrictedPython's rules plus clock ticks,
size guards, `x[k] += v` and the import allow-list, on the user's line numbers; and the sandbox's errors."""

from __future__ import annotations

import ast
import re
from typing import Any

from RestrictedPython.transformer import IOPERATOR_TO_STR, RestrictingNodeTransformer

from sofiaflow.runtime.api import NodeError

DEFAULT_ALLOWED_MODULES = frozenset(
    {
        "math",
        "json",
        "re",
        "datetime",
        "time",
        "random",
        "statistics",
        "itertools",
        "functools",
        "collections",
        "string",
        "decimal",
        "fractions",
        "hashlib",
        "base64",
        "uuid",
        "copy",
        "operator",
        "zoneinfo",
    }
)
WHERE = "in python function nodes"
_GUARDED_BINOPS = {ast.Pow: "_pow_", ast.Mult: "_mul_", ast.LShift: "_lshift_"}
_DENIED_MODULES = frozenset({"json.tool"})  # a command line: it reads the server's argv and stdin


class SandboxError(NodeError):
    """Base of the errors the sandbox raises about a script."""


class ScriptSyntaxError(SandboxError):
    """The body does not compile, or uses a construct refused at compile time."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


class ScriptTimeout(SandboxError):
    """The body ran past its time limit."""


class ScriptRefused(SandboxError):
    """The body tried something forbidden at run time (import, attribute, builtin, huge value)."""


def module_allowed(name: str, allowed: frozenset[str]) -> bool:
    """True when a body may import or hold module `name`: allow-listed, public, not denied."""
    parts = name.split(".")
    return parts[0] in allowed and name not in _DENIED_MODULES and not any(p.startswith("_") for p in parts)


class Policy(RestrictingNodeTransformer):
    """RestrictedPython's rules, plus clock ticks, size guards, `x[k] += v` and import checks."""

    allowed_modules = DEFAULT_ALLOWED_MODULES

    @staticmethod
    def _call(name: str, *args: ast.expr) -> ast.Call:
        return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])

    def _ticking(self, node: Any) -> Any:
        node.body.insert(0, ast.copy_location(ast.Expr(self._call("_tick_")), node))
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        return self._ticking(self.node_contents_visit(node))

    def visit_For(self, node: ast.For) -> ast.AST:
        return self._ticking(self.guard_iter(node))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._ticking(super().visit_FunctionDef(node))

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        node = self.guard_iter(node)
        node.ifs.insert(0, ast.copy_location(ast.UnaryOp(ast.Not(), self._call("_tick_")), node.iter))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node = super().visit_Lambda(node)
        node.body = ast.copy_location(ast.BoolOp(ast.Or(), [self._call("_tick_"), node.body]), node.body)
        return node

    def visit_Global(self, node: ast.Global | ast.ClassDef) -> None:
        self.error(node, f"global statements and class definitions are not allowed {WHERE}")

    visit_ClassDef = visit_Global

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        guard = _GUARDED_BINOPS.get(type(node.op))
        return node if guard is None else ast.copy_location(self._call(guard, node.left, node.right), node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        if not isinstance(node.target, ast.Subscript):
            return super().visit_AugAssign(node)  # names: `_inplacevar_`; attributes: refused
        op = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        args = self.visit(node.target.value), self.visit(node.target.slice), op, self.visit(node.value)
        return ast.copy_location(ast.Expr(self._call("_inplaceitem_", *args)), node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        new = super().visit_Attribute(node)
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            new.value.func.id = "_write_attr_"  # attribute writes have their own, stricter guard
        return new

    def check_import_names(self, node: ast.Import | ast.ImportFrom) -> ast.AST:
        is_from = isinstance(node, ast.ImportFrom)  # a relative `from .x import y` names module ".x"
        for name in ["." * node.level + (node.module or "")] if is_from else [a.name for a in node.names]:
            if not module_allowed(name, self.allowed_modules):
                self.error(node, f"import of module {name!r} is not allowed {WHERE}")
        return super().check_import_names(node)

    @classmethod
    def transform(cls, source: str, filename: str, allowed_modules: frozenset[str]) -> list[ast.stmt]:
        """The body's statements, checked and rewritten, or ScriptSyntaxError."""
        policy = cls([], [], {})
        policy.allowed_modules = allowed_modules
        try:
            tree = policy.visit(ast.parse(source, filename, "exec"))
        except SyntaxError as exc:
            raise ScriptSyntaxError(f"line {exc.lineno}: {exc.msg}", exc.lineno) from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ScriptSyntaxError(f"cannot compile the script: {exc}") from None
        found = [(re.match(r"Line (\d+): (.*)", e, re.S), e) for e in dict.fromkeys(policy.errors)]
        if found:
            texts = [f"line {m[1]}: {m[2]}" if m else e for m, e in found]
            raise ScriptSyntaxError("; ".join(texts), next((int(m[1]) for m, _ in found if m), None))
        return tree.body or [ast.Pass(lineno=1, col_offset=0)]
