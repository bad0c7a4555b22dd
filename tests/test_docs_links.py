"""The README starts small and links into docs/: every relative link of README.md and docs/*.md points to a file
that exists (and to a heading that exists, when it names one), and docs/README.md lists every page of docs/."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # a '#' line in a code block is no heading
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_relative_link_resolves():
    bad = []
    for page in pages():
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                bad.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert bad == [], "\n".join(bad)


def test_the_docs_index_lists_every_page():
    index = (REPO / "docs" / "README.md").read_text()
    listed = set(LINK.findall(index))
    missing = [p.name for p in sorted((REPO / "docs").glob("*.md")) if p.name != "README.md" and p.name not in listed]
    assert missing == [], f"add to docs/README.md: {missing}"


def test_the_readme_starts_small():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "(docs/README.md)" in readme
