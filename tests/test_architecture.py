"""The dependency rule: the import contracts of pyproject.toml hold, and they would catch a break.

``lint-imports`` runs on the real tree; then on copies of it in ``tmp_path`` with one forbidden
import added, where it must fail naming the contract that import breaks. A last test scans the
library's source for strings naming the workflow (``include.``/``tools.`` modules), which no
import contract sees: an import path in a string default is a dependency too.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LIBRARY = ROOT / "src" / "segue"
WORKFLOW_NAME = re.compile(r"\b(?:include|tools)\.[A-Za-z_]")


def contracts(root: Path = ROOT) -> dict[str, dict]:
    """The import contracts of ``root``'s pyproject.toml by id."""
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the tree at ``root`` (its packages first on the path, no cache)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root)])
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    broken = [line for line in result.stdout.splitlines() if line.rstrip().endswith("BROKEN")]
    assert result.returncode == 0, f"broken contracts: {broken}\n{result.stdout}{result.stderr}"
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


def test_the_core_contract_lists_every_library_module_but_segue_airflow():
    core = contracts()["library-core-runs-without-airflow"]
    modules = {
        f"segue.{path.stem}"
        for path in LIBRARY.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    assert set(core["source_modules"]) == modules - {"segue.airflow"}


def copy_tree(tmp_path: Path) -> Path:
    """The three root packages and pyproject.toml, copied (no caches) to ``tmp_path``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(LIBRARY, tmp_path / "src" / "segue", ignore=ignore)
    shutil.copytree(ROOT / "include", tmp_path / "include", ignore=ignore)
    shutil.copytree(ROOT / "tools", tmp_path / "tools", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


BREAKS = {
    "library-knows-no-workflow": ("src/segue/bus/handlers.py", "import include.payments.events"),
    "payment-domain-is-plain": ("include/payments/models.py", "import kombu"),
    "gateway-stands-alone": ("include/gateway/cards.py", "from segue.events import payload"),
    "library-core-runs-without-airflow": (
        "src/segue/cli.py",
        "from segue.airflow.hooks import amqp",
    ),
    "services-run-without-airflow": ("include/services/receipt.py", "import airflow.sdk"),
}


def test_every_contract_has_a_break_proving_it_bites():
    assert set(BREAKS) == set(contracts())


@pytest.mark.parametrize("contract_id", sorted(BREAKS))
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, contract_id: str):
    root = copy_tree(tmp_path)
    module, forbidden = BREAKS[contract_id]
    path = root / module
    path.write_text(f"{path.read_text()}\n{forbidden}  # the forbidden import\n")
    result = lint_imports(root)
    assert result.returncode != 0, result.stdout
    name = " ".join(contracts(root)[contract_id]["name"].split())
    report = " ".join(result.stdout.split())  # rich wraps long lines
    assert f"{name} BROKEN" in report, result.stdout
    assert f"Contracts: {len(BREAKS) - 1} kept, 1 broken." in report, result.stdout


def library_strings(path: Path) -> list[tuple[int, str]]:
    """Every string constant of the module at ``path`` with its line, docstrings included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def workflow_names_in_library() -> list[str]:
    found = []
    for path in sorted(LIBRARY.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        relative = path.relative_to(ROOT)
        if path.suffix == ".py":
            found += [
                f"{relative}:{line}: {text!r}"
                for line, text in library_strings(path)
                if WORKFLOW_NAME.search(text)
            ]
        else:  # templates and other data files
            for line, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if WORKFLOW_NAME.search(text):
                    found.append(f"{relative}:{line}: {text.strip()!r}")
    return found


def test_the_library_names_no_workflow_module_in_a_string():
    assert workflow_names_in_library() == []


def test_the_string_scan_finds_a_workflow_default(tmp_path: Path, monkeypatch):
    library = tmp_path / "src" / "segue"
    shutil.copytree(LIBRARY, library, ignore=shutil.ignore_patterns("__pycache__"))
    settings = library / "settings.py"
    settings.write_text(f'{settings.read_text()}\nDEFAULT_REGISTRY = "include.payments.events"\n')
    template = library / "airflow" / "plugin" / "templates" / "base.html"
    template.write_text(f"{template.read_text()}\n<!-- tools.up -->\n")
    monkeypatch.setattr(sys.modules[__name__], "LIBRARY", library)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = workflow_names_in_library()
    assert [entry.split(":")[0] for entry in found] == [
        "src/segue/airflow/plugin/templates/base.html",
        "src/segue/settings.py",
    ]
