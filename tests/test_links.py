"""Every relative link of the documents reaches something (issue 26, item 5).

README.md is a landing page whose sections moved to docs/, CONTRIBUTING.md and results/<name>/README.md;
a renamed file or heading must not leave a link dangling. For README.md, CONTRIBUTING.md, docs/*.md,
recipes/README.md and every Markdown file under results/: each relative link ``[text](path)`` or image
``![alt](path)`` outside code names an existing file or folder inside the repository, and a ``#anchor``
(``path#anchor``, or ``#anchor`` alone for the same file) is the slug of a heading of the target Markdown
file, made as GitHub makes it: the heading's text lowercased, everything but letters, digits, ``_``,
``-`` and spaces dropped, spaces turned into ``-``, and ``-1``, ``-2``, ... appended to repeats.
"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+).+?\1")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def documents() -> list[Path]:
    docs = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "recipes" / "README.md"]
    return docs + sorted((REPO / "docs").glob("*.md")) + sorted((REPO / "results").rglob("*.md"))


def _prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for no, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append((no, line))
    return out


def slug(heading: str) -> str:
    text = LINK.sub(lambda m: m.group(1), heading)          # a link in a heading counts by its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in _prose(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(doc: Path, root: Path = REPO) -> list[str]:
    """'file:line: target (why)' for every relative link of ``doc`` that does not resolve."""
    bad = []
    for no, line in _prose(doc.read_text(encoding="utf-8")):
        for m in LINK.finditer(CODE_SPAN.sub("", line)):
            target = m.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):   # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            where = f"{doc.relative_to(root)}:{no}: {target}"
            dest = (doc.parent / path).resolve() if path else doc
            if root.resolve() not in dest.parents and dest != root.resolve():
                bad.append(f"{where} (outside the repository)")
            elif not dest.exists():
                bad.append(f"{where} (no such file)")
            elif anchor and dest.suffix != ".md":
                bad.append(f"{where} (an anchor into a file that is not Markdown)")
            elif anchor and anchor not in anchors(dest):
                bad.append(f"{where} (no heading with this anchor in {dest.relative_to(root.resolve())})")
    return bad


def test_every_relative_link_resolves():
    docs = documents()
    assert {REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "docs" / "usage.md",
            REPO / "results" / "quickstart" / "README.md"} <= set(docs)
    bad = [b for doc in docs for b in broken_links(doc)]
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_the_readme_reaches_every_moved_section_in_one_click():
    """What left the README is one link away from it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = {m.group(2).partition("#")[0] for m in LINK.finditer(text)}
    moved = {"docs/usage.md", "docs/bench.md", "docs/performance.md", "docs/reliability.md",
             "docs/paper_scale.md", "CONTRIBUTING.md", "recipes/README.md", "results/quickstart/README.md",
             "results/fashion_mnist/README.md", "results/b2kd_fashion_mnist/README.md",
             "results/b2kd_fashion_mnist_shift/README.md"}
    assert moved <= targets, moved - targets
    assert len(text.splitlines()) <= 250


def test_slugs_are_githubs():
    assert slug("`kdzoo compare`: checking a rerun") == "kdzoo-compare-checking-a-rerun"
    assert slug("Tuning: `kdzoo tune`") == "tuning-kdzoo-tune"
    assert slug("Black-box teachers (B2KD) and MEKD") == "black-box-teachers-b2kd-and-mekd"
    assert slug("What survives a rerun, and what does not") == "what-survives-a-rerun-and-what-does-not"
    assert slug("Paper-scale: CIFAR-100 and ImageNet") == "paper-scale-cifar-100-and-imagenet"
    assert slug("[DIST](x.md) at T = 1") == "dist-at-t--1"


def test_the_checker_finds_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## Same\n\n## Same\n")
    doc = tmp_path / "README.md"
    doc.write_text("\n".join([
        "[fine](docs/a.md) [fine](docs/a.md#title) [fine](docs/a.md#same-1) [self](#top) [web](https://x.org/y)",
        "# Top",
        "[gone](docs/b.md) and ![gone](img.png)",
        "[bad anchor](docs/a.md#same-2) [bad self](#nothing)",
        "`[in code](nowhere.md)`",
        "```",
        "[in a fence](nowhere.md)",
        "```",
        "[escapes](../../etc/passwd)",
    ]))
    bad = broken_links(doc, root=tmp_path)
    assert [b.split(": ", 1)[1] for b in bad] == [
        "docs/b.md (no such file)", "img.png (no such file)",
        "docs/a.md#same-2 (no heading with this anchor in docs/a.md)",
        "#nothing (no heading with this anchor in README.md)",
        "../../etc/passwd (outside the repository)"], bad
