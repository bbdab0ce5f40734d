"""Every public class and function of the library has a docstring that names its parameters.

Walks ``src/segue`` with ``ast`` (nothing is imported). Public means no leading underscore, at
module level or as a method of a public class (functions nested in functions are not API). A
function or method taking parameters beyond ``self``/``cls`` must name at least one of them in
its docstring, as ``:param name:`` or ````name````; a class's ``__init__`` parameters may be
named in the class docstring or in ``__init__``'s.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import segue

ROOT = Path(segue.__file__).resolve().parent

# Alembic revision files: generated, and their upgrade()/downgrade() say what by their name.
EXCLUDED_PARTS = ("migrations/versions/",)

# Framework overrides under segue/airflow: Airflow documents what they do (operators, triggers,
# BaseEventTrigger's shared streams and their SharedStreamProducer).
FRAMEWORK_OVERRIDES = {
    "shared_stream_key",
    "filter_shared_stream",
    "open_stream",
    "advance",
    "aclose",
    "execute",
    "execute_complete",
    "poke",
    "serialize",
    "run",
    "cleanup",
    "on_kill",
    "create_shared_stream_producer",
    "get_connection_form_widgets",
    "get_ui_field_behaviour",
}


def library_modules() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not any(part in path.relative_to(ROOT).as_posix() for part in EXCLUDED_PARTS)
    )


def is_public(name: str) -> bool:
    return not name.startswith("_")


def top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements at this level, looking into ``if``/``try`` blocks but not into functions."""
    for node in body:
        if isinstance(node, ast.If | ast.Try):
            yield from top_level(node.body + node.orelse)
            if isinstance(node, ast.Try):
                for handler in node.handlers:
                    yield from top_level(handler.body)
                yield from top_level(node.finalbody)
        else:
            yield node


Function = ast.FunctionDef | ast.AsyncFunctionDef


def parameters(function: Function, *, method: bool) -> list[str]:
    args = function.args
    names = [arg.arg for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [arg.arg for arg in (args.vararg, args.kwarg) if arg is not None]
    decorators = {ast.unparse(decorator) for decorator in function.decorator_list}
    if method and "staticmethod" not in decorators and names:
        names = names[1:]  # self or cls
    return names


def names_one(docstring: str, names: list[str]) -> bool:
    return any(
        re.search(rf":param {re.escape(name)}:|``\*{{0,2}}{re.escape(name)}``", docstring)
        for name in names
    )


def problems_in(path: Path, root: Path = ROOT) -> Iterator[str]:
    """What is missing in the module at ``path`` of the package at ``root``."""
    module = path.relative_to(root.parent).as_posix()
    in_airflow = module.startswith("segue/airflow/")
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in top_level(tree.body):
        if isinstance(node, Function) and is_public(node.name):
            yield from check_function(module, node.name, node, method=False)
        elif isinstance(node, ast.ClassDef) and is_public(node.name):
            class_doc = ast.get_docstring(node) or ""
            if not class_doc:
                yield f"{module}:{node.lineno} class {node.name}: no docstring"
            for member in top_level(node.body):
                if not isinstance(member, Function):
                    continue
                if member.name == "__init__":
                    names = parameters(member, method=True)
                    doc = class_doc + "\n" + (ast.get_docstring(member) or "")
                    if names and not names_one(doc, names):
                        yield (
                            f"{module}:{member.lineno} {node.name}.__init__: neither docstring "
                            f"names a parameter ({', '.join(names)})"
                        )
                    continue
                if not is_public(member.name):
                    continue
                if in_airflow and member.name in FRAMEWORK_OVERRIDES:
                    continue
                yield from check_function(module, f"{node.name}.{member.name}", member, method=True)


def check_function(module: str, name: str, function: Function, *, method: bool) -> Iterator[str]:
    docstring = ast.get_docstring(function)
    where = f"{module}:{function.lineno} {name}"
    if not docstring:
        yield f"{where}: no docstring"
        return
    names = parameters(function, method=method)
    if names and not names_one(docstring, names):
        yield f"{where}: docstring names no parameter ({', '.join(names)})"


def test_the_walk_finds_the_library() -> None:
    modules = {path.relative_to(ROOT).as_posix() for path in library_modules()}
    assert {"testing.py", "bus/handlers.py", "events/registry.py"} <= modules
    assert {"settings.py", "cli.py", "store/engine.py", "statemachine/store.py"} <= modules
    assert not [module for module in modules if "migrations/versions/" in module]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f(x):\n    pass\n", ["f: no docstring"]),
        ('def f(x):\n    """Does it."""\n', ["f: docstring names no parameter (x)"]),
        ('def f(x):\n    """Does ``x``."""\n', []),
        ('def f(*, x, y):\n    """Does.\n\n    :param y: why.\n    """\n', []),
        ("def _f(x):\n    pass\n", []),
        ('class C:\n    def m(self):\n        """Does."""\n', ["class C: no docstring"]),
        (
            'class C:\n    """A C."""\n\n    def __init__(self, n):\n        pass\n',
            ["C.__init__: neither docstring names a parameter (n)"],
        ),
        ('class C:\n    """A C of ``n``."""\n\n    def __init__(self, n):\n        pass\n', []),
        (
            'class C:\n    """A C."""\n\n    @staticmethod\n    def m(a):\n        """M."""\n',
            ["C.m: docstring names no parameter (a)"],
        ),
        ("class _C:\n    def m(self, a):\n        pass\n", []),
    ],
)
def test_the_check_catches_what_it_should(tmp_path: Path, source: str, expected: list[str]) -> None:
    probe = tmp_path / "segue" / "probe.py"
    probe.parent.mkdir()
    probe.write_text(source)
    found = [problem.split(" ", 1)[1] for problem in problems_in(probe, probe.parent)]
    assert found == expected


def test_public_api_has_docstrings_naming_parameters() -> None:
    problems = [problem for path in library_modules() for problem in problems_in(path)]
    assert not problems, f"{len(problems)} public objects need docstrings:\n" + "\n".join(problems)
