"""README's configuration table is generated from the traits' help= (ffsystemd/config_docs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ffsystemd.config_docs import README, config_table, config_traits, main, with_table


def test_readme_table_matches_the_traits() -> None:
    text = README.read_text()
    assert with_table(text, config_table()) == text, "run: python -m ffsystemd.config_docs"


def test_every_trait_has_help_and_a_row() -> None:
    table = config_table()
    names = [name for name, _ in config_traits()]
    assert {"memory_max", "max_sessions", "idle_timeout", "dbus_timeout"} <= set(names)
    for name, trait in config_traits():
        assert trait.help.strip(), f"{name} has no help="
        assert f"| `{name}` |" in table


def test_check_fails_on_a_stale_table_and_the_rewrite_fixes_it(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- config-table:start -->\n| old |\n<!-- config-table:end -->\n\nrest\n")
    assert main(["--check", "--readme", str(readme)]) == 1
    assert main(["--readme", str(readme)]) == 0
    assert main(["--check", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n") and text.endswith("\n\nrest\n") and '| `memory_max` | `"2G"` |' in text


def test_missing_markers_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="markers"):
        with_table("no table here", config_table())
