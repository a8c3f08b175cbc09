"""Write gold/<package>/<page>.txt: the article body of each saved page, for bench/scrape.py.

The body is the element each theme marks as the main content (`role="main"`: Sphinx's
`div.body`, MkDocs' `div.col-md-9`), chosen by reading each of the four themes, with the
pilcrow permalinks (`a.headerlink`) removed. The gold files are committed, so they can be
corrected by hand; run this again only to rebuild them from scratch.
"""

from pathlib import Path

from lxml import html

HERE = Path(__file__).parent


def body_text(page: Path) -> str:
    tree = html.fromstring(page.read_bytes())
    main = tree.xpath("//*[@role='main']")[0]
    for element in main.xpath(".//a[contains(@class,'headerlink')]|.//script|.//style"):
        element.drop_tree()
    blocks = main.xpath(".//p|.//li|.//pre|.//h1|.//h2|.//h3|.//h4|.//dt|.//td|.//th")
    lines = []
    for block in blocks:
        if block.xpath("ancestor::li|ancestor::td|ancestor::pre") and block.tag != "pre":
            continue  # text counted once, through its outermost block
        lines.append(" ".join(block.text_content().split()))
    return "\n".join(line for line in lines if line) + "\n"


if __name__ == "__main__":
    for page in sorted((HERE / "third_party" / "pages").rglob("*.html")):
        target = HERE / "gold" / page.parent.name / (page.stem + ".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body_text(page), encoding="utf-8")
        print(target.relative_to(HERE))
