"""No import cycle inside stbp/: dependencies point one way (backend at the bottom,
the model code above it, the kernels beside the backend, the tools on top).

Every module is parsed, function-local imports included (they hide cycles from a plain
``import`` but are cycles all the same).  ``from stbp import X`` counts as an import of
``stbp.X`` when X is a module; the package's own ``__init__`` (which imports the modules
it re-exports) is not counted as a dependency of each module below it.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "stbp"

def module_names():
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("stbp",) + path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(path, modules):
    """The stbp modules that the file at path imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module not in modules:
                continue
            subs = {f"{node.module}.{a.name}" for a in node.names}
            hit = subs & set(modules)
            found |= hit if hit else {node.module}
            if hit != subs:                       # names defined in the module itself
                found.add(node.module)
    return found


def graph():
    modules = module_names()
    return {m: imports_of(p, modules) - {m} for m, p in modules.items()}


def cycles(edges):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_is_read():
    g = graph()
    assert "stbp.kernels.cpu" in g and "stbp.backend" in g
    assert "stbp.kernels" in g["stbp.kernels.cpu"]
    assert {"stbp.kernels.cpu", "stbp.kernels.cuda"} <= g["stbp.backend"]   # inside use()
    assert "stbp.backward" in g["stbp.network"]                             # inside a method


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_stbp():
    found = cycles(graph())
    assert found == [], f"import cycles: {found}"


def test_the_kernels_import_neither_backend_nor_model_code():
    g = graph()
    for name in ("stbp.kernels", "stbp.kernels.cpu", "stbp.kernels.cuda"):
        assert g[name] <= {"stbp.kernels", "stbp.env"}, (name, g[name])   # env: stdlib only
