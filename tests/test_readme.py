"""The README shows what the code does: its catalog table is registry.yaml's, its commands exist."""

import re
import runpy

from helpers import REPO


def test_the_readme_catalog_table_matches_registry_yaml():
    table = runpy.run_path(str(REPO / "scripts" / "catalog_table.py"))["catalog_table"]()
    assert table in (REPO / "README.md").read_text(), "run: python scripts/catalog_table.py, paste into README.md"


def test_the_readme_opens_with_the_two_commands_that_ci_runs():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    demo, tests = blocks[0].strip(), blocks[1].strip()
    assert "scripts/bootstrap" in demo and "zoo demo" in demo
    ci = (REPO / ".ci" / "run").read_text()
    assert tests in ci, f"the README's test command {tests!r} is not what .ci/run runs"
