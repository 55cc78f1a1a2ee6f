"""Reading a report.html back in tests: its tables (headers, cell texts, attributes), its sections, the URLs
it would load, and the data behind its Bokeh figures."""
from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path


class Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self.sections: list[str] = []
        self.loads: list[str] = []        # src/href values that would be fetched
        self.images: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_head = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "table":
            self.tables.append({"attrs": a, "headers": [], "rows": []})
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        for key in ("src", "href"):
            value = a.get(key)
            if value and not value.startswith("#"):
                (self.images if tag == "img" and value.startswith("data:image/") else self.loads).append(value)
        if tag == "link":
            self.loads.append(a.get("href", "<link>"))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            (self.tables[-1]["headers"] if self._in_head else self.tables[-1]["rows"]).append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def table(self, **attrs) -> list[dict]:
        return [t for t in self.tables if all(t["attrs"].get(k) == v for k, v in attrs.items())]

    @staticmethod
    def records(t: dict) -> list[dict[str, str]]:
        head = t["headers"][0]
        return [dict(zip(head, r)) for r in t["rows"]]


def read(path: Path) -> tuple[str, Page]:
    text = Path(path).read_text(encoding="utf-8")
    return text, Page(text)


def bokeh_sources(text: str) -> dict[str, dict[str, list]]:
    """{ColumnDataSource name: its columns}, from the document JSON Bokeh embeds as a JS string."""
    m = re.search(r"const docs_json = '(.*?)';", text, re.S)
    assert m, "no Bokeh document in the page"
    doc = json.loads(html.unescape(m.group(1).replace("\\\\", "\\")))
    out: dict[str, dict[str, list]] = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("name") == "ColumnDataSource" and "attributes" in node:
                attrs = node["attributes"]
                if attrs.get("name"):
                    out[attrs["name"]] = dict(attrs["data"]["entries"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return out
