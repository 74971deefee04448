"""The README and docs/ pages: short README, and every relative link and #anchor resolves."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _prose(path: Path) -> str:
    return re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # links inside code blocks are not links


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def broken_links(pages: list[Path]) -> list[str]:
    anchors = {p.resolve(): {_slug(h) for h in re.findall(r"^#+ (.*)$", _prose(p), re.M)} for p in pages}
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`\n]*`", "", _prose(page))):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, fragment = target.partition("#")
            dest = (page.parent / path).resolve() if path else page.resolve()
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif fragment and dest.suffix == ".md" and fragment not in anchors.get(dest, set()):
                broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_readme_is_short_and_links_the_docs_pages():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for page in ("data", "launching", "checkpoints", "finetuning", "performance", "architecture"):
        assert f"docs/{page}.md" in readme, page


def test_every_relative_link_and_anchor_resolves():
    assert broken_links(PAGES) == []


def test_the_link_check_finds_a_broken_file_and_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [bad](#nowhere) `[code](x.md)`\n```\n[x](y.md)\n```\n")
    assert broken_links([page]) == ["page.md: missing.md (no such file)", "page.md: #nowhere (no such heading)"]
