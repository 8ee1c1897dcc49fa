"""The README's configuration table, generated from the traits' `help=` (one source of truth).

    python -m ffsystemd.config_docs            # rewrite the table in README.md
    python -m ffsystemd.config_docs --check    # exit 1 when README.md's table differs

The table sits between the markers `<!-- config-table:start -->` and `<!-- config-table:end -->`;
tests/test_config_docs.py fails when it is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from traitlets import TraitType

START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"


def _default(trait: TraitType[Any, Any]) -> str:
    """The default as the admin would write it in jupyter_server_config.py."""
    value = trait.default()
    try:
        text = json.dumps(value)
    except TypeError:
        text = trait.default_value_repr()
    return "`" + text.replace("true", "True").replace("false", "False") + "`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def config_traits() -> list[tuple[str, TraitType[Any, Any]]]:
    """FirefoxLauncher's own configurable traits: group by group (ffsystemd.config), as declared."""
    from .app import FirefoxLauncher
    from .config import CONFIG_GROUPS

    traits = FirefoxLauncher.class_traits(config=True)
    names = [name for group in (*CONFIG_GROUPS, FirefoxLauncher) for name in vars(group) if name in traits]
    return [(name, traits[name]) for name in dict.fromkeys(names)]


def config_table() -> str:
    """The markdown table of every trait: name, default, and its help text."""
    rows = ["| trait | default | meaning |", "|---|---|---|"]
    for name, trait in config_traits():
        rows.append(f"| `{name}` | {_default(trait)} | {_cell(trait.help)} |")
    return "\n".join(rows)


def with_table(readme: str, table: str) -> str:
    """README text with the table between the markers replaced; ValueError if a marker is missing."""
    if START not in readme or END not in readme:
        raise ValueError(f"README.md lacks the markers {START} and {END}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ffsystemd.config_docs", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when README.md differs")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    updated = with_table(text, config_table())
    if args.check:
        if updated != text:
            print(
                f"{args.readme}: the configuration table is out of date;"
                " run: python -m ffsystemd.config_docs",
                file=sys.stderr,
            )
            return 1
        return 0
    if updated != text:
        args.readme.write_text(updated)
        print(f"{args.readme}: configuration table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
