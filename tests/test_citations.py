"""Every reference page the code and docs cite is in the repository, and every cited line
exists there: a user can follow each citation (docs/reference/)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
PAGE = re.compile(r"(?:docs/)?(?:reference/)?(krx|kis-realtime|krx-data-formats)\.md"
                  r"(?::(\d+)(?:-(\d+))?| lines (\d+)(?:-(\d+))?)?")


def _sources():
    for folder in ("replay", "venues", "brokers", "strategies", "docs", "tests", "bench"):
        for path in (ROOT / folder).rglob("*"):
            if (path.suffix in {".py", ".toml", ".md"} and REFERENCE not in path.parents
                    and path != Path(__file__).resolve()):
                yield path
    yield ROOT / "README.md"


def test_every_cited_reference_page_and_line_exists():
    cited = 0
    for path in _sources():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in PAGE.finditer(line):
                page = REFERENCE / f"{m[1]}.md"
                assert page.exists(), f"{path}:{n} cites {m[0]}, not in docs/reference"
                lines = page.read_text(encoding="utf-8").splitlines()
                for g in (m[2], m[3], m[4], m[5]):
                    if g is not None:
                        assert 1 <= int(g) <= len(lines) and lines[int(g) - 1].strip(), \
                            f"{path}:{n} cites line {g} of {page.name}, which is empty or absent"
                cited += 1
    assert cited > 50  # the code cites the KRX page throughout


def test_code_cites_the_copy_in_docs_not_a_path_outside_the_repository():
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        assert "../shared/" + "reference" not in text, path
        for m in re.finditer(r"(?<![\w/])reference/(?:krx|kis-realtime|krx-data-formats)\.md",
                             text):
            # docs/*.md link relative to docs/; code names the path from the repository root
            assert path.parent == ROOT / "docs", f"{path}: cites {m[0]} without docs/"
