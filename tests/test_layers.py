"""The package's layers, read from its source (AST): no import cycle, no import from a higher layer, no use
of another module's ``_private`` names (imported, read off the module by any name or chain, or through
``getattr``; a private attribute of an object made elsewhere is not seen), no function over 60 lines. The
order is docs/design.md's ("How it is built"): each layer may import itself and the layers before it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tracker"

# Lowest first. A module belongs to the first entry that is its name or a package above it.
LAYERS = [
    (
        "base",
        [
            "tracker.version",
            "tracker.paths",
            "tracker.files",
            "tracker.threads",
            "tracker.masks",
            "tracker.weights_cache",
            "tracker.settings",
        ],
    ),
    ("records", ["tracker.records"]),
    ("io", ["tracker.io"]),
    ("engine", ["tracker.engine"]),
    ("discovery", ["tracker.discovery"]),
    ("experiments", ["tracker.experiments"]),
    ("run", ["tracker.run"]),
    ("api", ["tracker.api"]),
    ("studio", ["tracker.studio"]),
    ("apps", ["tracker.apps"]),
    ("package", ["tracker"]),  # tracker/__init__.py: the public API, imported by no module of its own
]
MAX_FUNCTION_LINES = 60
MAX_CONSTRUCTOR_PARAMETERS = 8  # beyond this a class takes a settings record (a dataclass: no __init__ here)


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = _modules()


def _bad_module(folder: Path, source: str) -> Path:
    """A module written to break a rule (read as ``tracker.io.bad`` by the tests of the rules)."""
    path = folder / "bad.py"
    path.write_text(source)
    return path


def layer_of(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix == "tracker" and module != "tracker":
                continue
            if module == prefix or module.startswith(prefix + "."):
                return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/design.md's order")


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported tracker module, names taken from it, line) for every import in the module, at any depth."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != "tracker" and not target.startswith("tracker."):
                continue
            names = [a.name for a in node.names]
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            taken = [n for n in names if f"{target}.{n}" not in MODULES]
            if taken or not subs:  # `from .. import settings` imports the module tracker.settings alone
                found.append((target, taken, node.lineno))
            found += [(s, [], node.lineno) for s in subs]
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "tracker"]
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_no_import_from_a_higher_layer():
    bad = []
    for name, imports in GRAPH.items():
        for target, _, line in imports:
            if layer_of(target) > layer_of(name):
                bad.append(f"{MODULES[name]}:{line}: {name} ({LAYERS[layer_of(name)][0]}) imports {target}")
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    edges = {name: {t for t, _, _ in imports if t in MODULES and t != name} for name, imports in GRAPH.items()}
    # a package's __init__ importing its own submodules is how it exposes them, not a cycle through them
    for name in edges:
        edges[name] = {t for t in edges[name] if not t.startswith(name + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges[n]):
            if state.get(m) == 1:
                cycle = stack[stack.index(m) :] + [m]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _private_uses(name: str, path: Path) -> list[str]:
    """Another module's private names used by ``name``: imported (``from m import _x``), read off a module
    bound by an import (``m._x``, ``tracker.m._x``, ``alias._x``) or by ``getattr(m, "_x")``."""
    bad = [
        f"{path}:{line}: imports {target}.{n}"
        for target, names, line in _imports(name, path)
        for n in names
        if _private(n) and target != name
    ]
    tree = ast.parse(path.read_text())
    modules = {}  # local name -> tracker module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for t, _, _ in _imports(name, path):
                for a in node.names:
                    if t.endswith("." + a.name) and t in MODULES:
                        modules[a.asname or a.name] = t
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] != "tracker":
                    continue
                if a.asname:
                    modules[a.asname] = a.name
                else:  # `import tracker.x` binds tracker: the chain of attributes names x
                    modules["tracker"] = "tracker"

    def module_of(node: ast.AST) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if modules.get(head) is None:
            return None
        full = dotted if modules[head] == head else modules[head] + (f".{rest}" if rest else "")
        return full if full in MODULES and full != name else None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and (m := module_of(node.value)):
            bad.append(f"{path}:{node.lineno}: uses {m}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
            and (m := module_of(node.args[0]))
        ):
            bad.append(f"{path}:{node.lineno}: uses {m}.{node.args[1].value} through {node.func.id}")
    return bad


def test_no_use_of_another_modules_private_names():
    bad = [line for name, path in MODULES.items() for line in _private_uses(name, path)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "from ..engine.propagation import _Group\n",
        "from ..engine import propagation as p\np._Group\n",
        "from ..engine import propagation\npropagation._Group\n",
        "import tracker.engine.propagation\ntracker.engine.propagation._Group\n",
        "import tracker.engine.propagation as p\np._Group\n",
        "from ..engine import propagation\ngetattr(propagation, '_Group')\n",
    ],
)
def test_the_private_rule_catches_each_way_of_reaching_in(tmp_path, source):
    path = _bad_module(tmp_path, source)
    assert _private_uses("tracker.io.bad", path), source


def test_the_private_rule_leaves_public_names_and_own_objects_alone(tmp_path):
    path = tmp_path / "ok.py"
    path.write_text(
        "import tracker.engine.propagation\nfrom ..engine import propagation\n"
        "tracker.engine.propagation.Propagator\npropagation.Propagator\nself._x = 1\ngetattr(self, '_x')\n"
    )
    assert _private_uses("tracker.io.ok", path) == []


def _long_functions(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if n > MAX_FUNCTION_LINES:
                out.append(f"{path}:{node.lineno}: {node.name} has {n} lines")
    return out


def _wide_constructors(path: Path) -> list[str]:
    """Classes whose own ``__init__`` takes more than MAX_CONSTRUCTOR_PARAMETERS parameters (self and
    ``*args`` / ``**kwargs`` not counted). A dataclass (a settings record) writes no ``__init__``."""
    out = []
    for cls in ast.walk(ast.parse(path.read_text())):
        if not isinstance(cls, ast.ClassDef):
            continue
        for fn in cls.body:
            if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
                a = fn.args
                n = len(a.posonlyargs) + len(a.args) - 1 + len(a.kwonlyargs)
                if n > MAX_CONSTRUCTOR_PARAMETERS:
                    out.append(f"{path}:{fn.lineno}: {cls.name}.__init__ takes {n} parameters")
    return out


def test_no_function_over_60_lines():
    long = [line for path in MODULES.values() for line in _long_functions(path)]
    assert not long, "\n".join(long)


def test_no_constructor_over_8_parameters():
    wide = [line for path in MODULES.values() for line in _wide_constructors(path)]
    assert not wide, "\n".join(wide)


@pytest.mark.parametrize(
    "source, rule",
    [
        ("from ..apps import cli\n", "higher layer"),
        ("from ..engine.propagation import _Group\n", "private"),
        ("def f():\n" + "    x = 1\n" * 61, "long"),
        ("class C:\n    def __init__(self, a, b, c, d, e, f, g, *, h=0, i=1):\n        pass\n", "wide"),
    ],
)
def test_the_rules_catch_what_they_name(tmp_path, source, rule):
    """Each rule fails on a module written to break it (here: a module of the io layer)."""
    path = _bad_module(tmp_path, source)
    name = "tracker.io.bad"
    imports = _imports(name, path)
    if rule == "higher layer":
        assert any(layer_of(t) > layer_of(name) for t, _, _ in imports)
    elif rule == "private":
        assert any(_private(n) for _, names, _ in imports for n in names)
    elif rule == "long":
        assert _long_functions(path)
    else:
        assert _wide_constructors(path)


def test_apps_cli_stays_small():
    assert len((ROOT / "apps" / "cli.py").read_text().splitlines()) <= 350


# The engine's SAM module, and beside it the code ported from upstream, may import sam2 (its Hydra starts on
# import): nothing else does.
SAM2_MODULES = ("tracker.engine.sam", "tracker.engine.sam2_port")
TORCH_FREE = ("tracker.engine.types", "tracker.engine.memory", "tracker.engine.camera", "tracker.engine.policies")


def _third_party(path: Path, on_load: bool = False) -> set[str]:
    """Top-level packages a module imports, at any depth, statically or by an importlib string; ``on_load``:
    only those its top-level statements import when it is loaded (not function bodies, not ``if
    TYPE_CHECKING:`` blocks)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body if on_load else ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value.split(".")[0])
    return found


def test_sam2_is_imported_by_the_engines_sam_module_alone():
    bad = [str(p) for name, p in MODULES.items() if name not in SAM2_MODULES and "sam2" in _third_party(p)]
    assert not bad, "sam2 imported outside tracker/engine/sam.py and sam2_port.py: " + ", ".join(bad)


# What code outside the engine's SAM module may do with SAM 2's network (``SamModel.net``, an nn.Module):
# torch's own module calls (train, save, load); anything of SAM 2's goes through a SamModel method.
NET_CALLS = {"parameters", "named_parameters", "train", "eval", "training", "state_dict", "load_state_dict", "to"}


def _net_reach_ins(path: Path) -> list[str]:
    """``net.x`` / ``<obj>.net.x`` with x not one of torch's module calls (NET_CALLS)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute) or node.attr in NET_CALLS:
            continue
        v = node.value
        if (isinstance(v, ast.Name) and v.id == "net") or (isinstance(v, ast.Attribute) and v.attr == "net"):
            out.append(f"{path}:{node.lineno}: .net.{node.attr}")
    return out


def test_sam2s_network_is_driven_by_the_engines_sam_module_alone():
    found = [line for name, path in MODULES.items() if name not in SAM2_MODULES for line in _net_reach_ins(path)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source", ["net._track_step(1)\n", "x = model.net.sam_mask_decoder\n", "net.image_encoder.parameters()\n"]
)
def test_the_net_rule_catches_each_way_of_reaching_in(tmp_path, source):
    assert _net_reach_ins(_bad_module(tmp_path, source))
    assert not _net_reach_ins(_bad_module(tmp_path, "net.train()\nsd = model.net.state_dict()\n"))


def test_the_engines_records_and_policies_load_without_torch():
    bad = [
        str(p)
        for name, p in MODULES.items()
        if name.startswith(TORCH_FREE) and {"torch", "sam2"} & _third_party(p, on_load=True)
    ]
    assert not bad, "torch or sam2 imported on load by: " + ", ".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "import sam2\n",
        "from sam2.modeling import sam2_base\n",
        "import importlib\nimportlib.import_module('sam2.build_sam')\n",
    ],
)
def test_the_sam2_rule_catches_static_and_importlib_imports(tmp_path, source):
    path = _bad_module(tmp_path, source)
    assert "sam2" in _third_party(path)
