"""The package stays easy to change: short modules and functions with few parameters (issue 22's limits)."""

import ast

from tests.conftest import REPO_ROOT

MAX_MODULE_LINES = 400
MAX_PARAMETERS = 8  # self/cls not counted


def _parameters(function):
    args = function.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [n for n in names if n not in ("self", "cls")]


def test_no_module_is_long_and_no_function_takes_many_parameters():
    long_modules, wide_functions = [], []
    for path in sorted((REPO_ROOT / "giblet").rglob("*.py")):
        source = path.read_text()
        name = str(path.relative_to(REPO_ROOT))
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(name)
        wide_functions += [f"{name}:{node.name}" for node in ast.walk(ast.parse(source))
                           if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                           and len(_parameters(node)) > MAX_PARAMETERS]
    assert long_modules == [] and wide_functions == []
