"""Write the table of every setting into docs/configs.md, from the declarations in
initbench/settings.py (tests/test_settings.py fails when the two disagree).

    python scripts/settings_table.py
"""

from __future__ import annotations

import re
from pathlib import Path

from initbench.views import listings, tables

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configs.md"
START, END = "<!-- settings: written by scripts/settings_table.py -->", "<!-- end of settings -->"


def section() -> str:
    return f"{START}\n{tables.markdown(listings.settings_listing())}\n{END}"


def main() -> None:
    text = DOCS.read_text()
    DOCS.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section(), text, flags=re.S))


if __name__ == "__main__":
    main()
