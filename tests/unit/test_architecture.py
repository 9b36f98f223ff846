"""The package's seams: in its import graph no cycles, and no module imports a higher layer (imports inside
functions count too: hiding an import in a function does not remove the dependency); Snowflake's driver and
folder reached only where allowed; no branch on a sync mode's name outside ``pipeline/modes/``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "aurora_replication" / "aurora_replication"
DEV_PACKAGE = ROOT / "dev" / "aurora_replication_dev"

# lower numbers are lower layers; a module may import its own layer or lower ones
LAYERS: dict[str, int] = {
    "errors": 0,
    "identifiers": 0,
    "keyset": 0,
    "typemap": 0,
    "cost": 0,  # the package itself (empty); each of its modules has its own entry
    "cost.meter": 0,
    "generated_sql": 1,
    "models": 2,
    "schema_changes": 2,  # what a schema change is and what is recorded of it: the warehouse's and the pipeline's
    "config": 3,
    "checksums": 3,
    "secrets": 3,
    "retry": 3,
    "source": 4,
    "target": 4,
    "ledger": 4,
    "cost.ledger": 4,
    "services": 5,
    "pipeline": 6,
    "pipeline.modes.cdc": 6,  # change data capture, one package: its mode and every part of its flow
    "cost.settle": 6,
    "ops": 7,
    "cost.estimate": 7,
    "cost.reconcile": 7,
    "rotation": 7,
}
# sibling boxes that must not know each other
SEPARATE = [("source", "target"), ("source", "ledger"), ("target", "ledger"), ("ops", "rotation")]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("aurora_replication"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aurora_replication"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in modules else node.module)
    return {m for m in found if m in modules}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) - {name} for name, path in paths.items()}


def box(module: str) -> str:
    """The module's entry in LAYERS: the longest one that names it or a package holding it. That is its
    subpackage; or the module itself where its subpackage spans layers (``cost``: what the work costs,
    counted at the bottom and priced at the top); or a package of its own inside one (``pipeline.modes.cdc``)."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in LAYERS:
            return ".".join(parts[:n])
    return parts[0] if parts else ""


CDC_HOME = "aurora_replication.pipeline.modes.cdc"


def test_the_cdc_modules_are_one_package() -> None:
    """Change data capture is one package, ``pipeline/modes/cdc/``, as the other modes are one module each of
    ``pipeline/modes/``: its mode, reader, several databases, follow loop, options and health check, one unit
    in LAYERS; no module of the pipeline outside it is named for cdc. (Below the pipeline, the binlog is the
    source's, ``source/binlog*.py``, and the stored position the ledger's, ``ledger/cdc.py``.)"""
    g = graph()
    inside = {m for m in g if m.startswith(CDC_HOME)}
    parts = {"mode", "reader", "databases", "follow", "options", "health"}
    assert {f"{CDC_HOME}.{p}" for p in parts} <= inside, sorted(inside)
    assert {box(m) for m in inside} == {"pipeline.modes.cdc"}
    outside = sorted(m for m in g if m.startswith("aurora_replication.pipeline.") and "cdc" in m and m not in inside)
    assert not outside, f"cdc modules outside pipeline/modes/cdc/: {outside}"


def test_every_module_has_a_layer() -> None:
    missing = sorted({box(m) for m in graph() if box(m) and box(m) not in LAYERS})
    assert not missing, f"add these to LAYERS: {missing}"


def test_no_import_cycles() -> None:
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(g[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node)


def test_no_module_imports_a_higher_layer() -> None:
    wrong = []
    for module, deps in graph().items():
        if not box(module):
            continue
        for dep in deps:
            if box(dep) and LAYERS[box(dep)] > LAYERS[box(module)]:
                wrong.append(f"{module} (layer {LAYERS[box(module)]}) imports {dep} (layer {LAYERS[box(dep)]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_separate_boxes_do_not_import_each_other() -> None:
    wrong = [
        f"{module} imports {dep}"
        for module, deps in graph().items()
        for dep in deps
        for a, b in SEPARATE
        if {box(module), box(dep)} == {a, b}
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_the_top_of_the_package_is_small() -> None:
    """At most 14 modules at the top of the package; the rest live in subpackages named for their part."""
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= 14, top


def test_the_graph_is_real() -> None:
    """The checks above would pass on an empty graph: make sure it holds the known edges."""
    g = graph()
    assert "aurora_replication.models" in g["aurora_replication.pipeline.worker"]
    assert "aurora_replication.source.sql" in g["aurora_replication.source.read"]


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_layer_holds_only_what_lambda_runs() -> None:
    """The developer's side (the local stack, the emulator's launcher, the CLI) lives in
    ``dev/aurora_replication_dev``; the Lambda layer neither holds nor imports it."""
    assert not (PACKAGE / "local").exists() and not (PACKAGE / "cli.py").exists()
    assert (DEV_PACKAGE / "local" / "stack.py").exists() and (DEV_PACKAGE / "cli.py").exists()
    wrong = sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "aurora_replication_dev" in _imported_roots(p)
    )
    assert not wrong, f"the Lambda layer imports the dev package: {wrong}"
    handlers = sorted((ROOT / "functions").rglob("*.py"))
    assert handlers
    wrong = sorted(str(p.relative_to(ROOT)) for p in handlers if "aurora_replication_dev" in _imported_roots(p))
    assert not wrong, f"a Lambda handler imports the dev package: {wrong}"


def test_test_modules_have_unique_names() -> None:
    """The suite runs as one `pytest tests` call with rootdir-relative imports (no __init__.py):
    two test files of the same name in different folders stop collection of the whole suite."""
    tests = Path(__file__).resolve().parents[1]
    seen: dict[str, list[str]] = {}
    for path in tests.rglob("test_*.py"):
        seen.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert not {name: where for name, where in seen.items() if len(where) > 1}


def test_the_sql_injection_lint_is_on() -> None:
    """ruff's S608 stays on for the package: silenced only per pure builder module or per line, with a reason."""
    import tomllib

    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "S608" not in lint["ignore"] and "S" in lint["select"]
    builders = {p for p, codes in lint["per-file-ignores"].items() if "S608" in codes and p.startswith("layers/")}
    assert builders and all(p.endswith("sql.py") for p in builders), builders


def test_retry_imports_no_driver() -> None:
    """Each side says which of its driver's errors are transient; ``retry`` knows none of them."""
    drivers = {"pymysql", "MySQLdb", "snowflake", "pymysqlreplication"}
    assert not _imported_roots(PACKAGE / "retry.py") & drivers


# The warehouse's folder: Snowflake's client, SQL, type forms, staging, tagging, evolution and async
# statements live in target/snowflake/; a second warehouse would be a folder beside it.
SNOWFLAKE_HOME = "aurora_replication.target.snowflake"
# where the pieces are connected: the one place allowed to name the warehouse it builds
WIRING = {"aurora_replication.services.connections", "aurora_replication.services.endpoints"}
# what the Snowflake secret's rotation and the Snowflake-only reconciliation are: the warehouse's own
WAREHOUSE_BOUND = {"aurora_replication.rotation.snowflake", "aurora_replication.cost.reconcile"}


def test_the_snowflake_connector_is_imported_in_the_warehouse_folder_only() -> None:
    wrong = sorted(
        name
        for name, path in {module_name(p): p for p in PACKAGE.rglob("*.py")}.items()
        if not name.startswith(SNOWFLAKE_HOME) and "snowflake" in _imported_roots(path)
    )
    assert not wrong, f"the Snowflake connector imported outside target/snowflake/: {wrong}"


def test_only_the_wiring_reaches_into_the_warehouse_folder() -> None:
    reaching = {
        module
        for module, deps in graph().items()
        if not module.startswith(SNOWFLAKE_HOME) and any(d.startswith(SNOWFLAKE_HOME) for d in deps)
    }
    assert reaching - WIRING - WAREHOUSE_BOUND == set(), "modules reach into target/snowflake/ (ask the Warehouse)"
    handlers = sorted((ROOT / "functions").rglob("*.py"))
    assert not [p for p in handlers if "snowflake" in _imported_roots(p)]


# A sync mode owns its plan, load, finalise, resume and health (``pipeline/modes/``): code elsewhere asks
# ``modes.get(name)`` or ``modes.requested(name)`` (or, below the pipeline, ``models.MODE_RULES``) what it
# needs, and never compares a mode with a mode's name. No module is allowed to: nothing had to stay.
MODES_HOME = PACKAGE / "pipeline" / "modes"


def _mode_names() -> set[str]:
    from aurora_replication.models import MODE_RULES, Mode

    names = set(get_args(Mode))
    assert names == set(MODE_RULES), "every mode a request may name has its rules (models.MODE_RULES)"
    return names


def _names_in(node: ast.expr, names: set[str]) -> set[str]:
    """The mode names ``node`` spells: a string literal, or a tuple, list, set or frozenset() of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & names
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return {n for e in node.elts for n in _names_in(e, names)}
    if isinstance(node, ast.Call) and not node.keywords and len(node.args) == 1:
        if isinstance(node.func, ast.Name) and node.func.id in ("frozenset", "set", "tuple"):
            return _names_in(node.args[0], names)
    return set()


def _mentions_mode(node: ast.expr) -> bool:
    """Whether ``node`` is about a mode: a name, attribute or key with "mode" in it (``mode``, ``plan.mode``,
    ``request.mode``, ``t.get("mode")``, ``t["mode"]``, ``args.mode``)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and "mode" in n.id.lower():
            return True
        if isinstance(n, ast.Attribute) and "mode" in n.attr.lower():
            return True
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and "mode" in n.value.lower():
            return True
    return False


def mode_name_branches(source: str, names: set[str]) -> list[str]:
    """Where ``source`` branches on a mode's name: a comparison (``==``, ``!=``, ``in``, ``not in``, ``is``)
    of something about a mode with a mode-name literal, a ``match`` on a mode with a name among its cases,
    or a dict of names looked up by a mode (``{"full": ...}[plan.mode]``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            spelled = set().union(*(_names_in(o, names) for o in operands))
            if spelled and any(_mentions_mode(o) for o in operands if not _names_in(o, names)):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Match) and _mentions_mode(node.subject):
            cases = [c.value for m in node.cases for c in ast.walk(m.pattern) if isinstance(c, ast.MatchValue)]
            if any(isinstance(v, ast.Constant) and v.value in names for v in cases):
                found.append(f"line {node.lineno}: match {ast.unparse(node.subject)}")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Dict) and _mentions_mode(node.slice):
            keys = {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
            if keys & names:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and isinstance(node.func.value, ast.Dict)
            and node.args
            and _mentions_mode(node.args[0])
            and {k.value for k in node.func.value.keys if isinstance(k, ast.Constant)} & names
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_mode_name_check_finds_what_it_should() -> None:
    """The check below would pass over a blind checker: each way of branching on a name is caught, and
    asking a mode, or a name that is not about a mode, is not."""
    names = _mode_names()
    caught = [
        'if plan.mode == "cdc": pass',
        'if request.mode != "reconcile": pass',
        'x = mode in ("auto", "incremental")',
        'x = t.get("mode") == "cdc"',
        'x = t["mode"] not in {"full"}',
        'x = args.mode in frozenset(("cdc",))',
        'x = "full" == mode',
        'x = {"full": 1, "incremental": 2}[plan.mode]',
        'x = {"full": 1}.get(mode, 0)',
        'match plan.mode:\n    case "full": pass\n    case _: pass',
    ]
    for source in caught:
        assert mode_name_branches(source, names), source
    passed = [
        "if modes.get(plan.mode).reads_window: pass",
        'x = step == "reconcile"',  # a step's name, not a mode
        'x = plan.model_copy(update={"mode": "cdc"})',  # naming a mode is not branching on it
        'x = checks.get("cdc")',
        "x = mode == other",
    ]
    for source in passed:
        assert not mode_name_branches(source, names), source


def test_no_mode_name_branches_outside_modes() -> None:
    """No module of the layer outside ``pipeline/modes/``, no Lambda handler and no module of the dev package
    branches on a mode's name: what differs by mode is an attribute of the mode (``SyncMode``)."""
    names = _mode_names()
    paths = [
        *(p for p in PACKAGE.rglob("*.py") if MODES_HOME not in p.parents),
        *(ROOT / "functions").rglob("*.py"),
        *DEV_PACKAGE.rglob("*.py"),
    ]
    assert len(paths) > 50
    wrong = [
        f"{p.relative_to(ROOT)} {where}" for p in sorted(paths) for where in mode_name_branches(p.read_text(), names)
    ]
    assert not wrong, "branches on a mode's name (ask modes.get(name) instead):\n" + "\n".join(wrong)
