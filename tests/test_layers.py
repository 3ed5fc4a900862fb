"""One-way layers: what imports what (checked on the import graph and in fresh processes)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    pkg = {"theory": "tvgrad.theory", "empirical": "tvgrad.empirical", "tvgrad": "tvgrad"}
    rel = path.relative_to(ROOT).with_suffix("").parts
    parts = pkg[rel[0]].split(".") + list(rel[1:])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[:-node.level]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_theory_core_never_imports_the_report_or_the_empirical_side():
    for path in (ROOT / "theory").rglob("*.py"):
        if path.name in ("report.py", "cli.py"):  # the report's renderer and the command
            continue
        bad = {m for m in _imports(path) if m and (m.startswith("tvgrad.empirical")
                                                  or m == "tvgrad.theory.report"
                                                  or m.startswith(("reports", "empirical")))}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_report_renders_without_the_claims():
    bad = {m for m in _imports(ROOT / "theory" / "report.py")
           if m and m.startswith(("tvgrad.theory.claims", "tvgrad.theory.campaign"))}
    assert not bad, bad


def _loaded_after(code: str) -> list[str]:
    probe = (f"import sys; {code}; print(sorted(m for m in ('sympy', 'hypothesis') "
             f"if m in sys.modules))")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout.strip()


def test_importing_the_empirical_side_loads_neither_sympy_nor_hypothesis():
    code = ("import tvgrad.empirical.finetune, tvgrad.empirical.merge, tvgrad.empirical.report, "
            "tvgrad.empirical.cli, tvgrad.empirical.io")
    assert _loaded_after(code) == "[]"


def test_nothing_generic_at_the_top_of_the_namespace():
    import tvgrad.empirical
    import tvgrad.reports
    import tvgrad.theory
    for mod, folder in ((tvgrad.theory, "theory"), (tvgrad.empirical, "empirical"),
                        (tvgrad.reports, "reports")):
        assert Path(mod.__file__).parent.name == folder
    out = subprocess.run([sys.executable, "-c", "import theory"], capture_output=True,
                         text=True, cwd="/")
    assert out.returncode != 0 and "No module named 'theory'" in out.stderr
