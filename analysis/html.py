"""A small Markdown-to-HTML converter for the reports this package writes.

The `markdown` package is not a dependency, so this covers exactly the subset the reports use:
ATX headings (with an id, `heading_id`, as GitHub gives them), paragraphs, pipe tables, bullet
lists, fenced code, images on their own line (embedded as base64 so the HTML file is
self-contained), [links](#anchor), **bold**, `code` and the <u>...</u> underline that marks
second-best values. Everything else is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)\s*$")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<text>.*)$")
_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}
table{border-collapse:collapse;margin:.8em 0;font-size:.85em}th,td{border:1px solid #ccc;padding:.25em .5em}
th{background:#f2f2f2}td.num{text-align:right}img{max-width:100%}pre{background:#f6f6f6;padding:.6em;overflow:auto}
figure{margin:1em 0}figcaption{font-size:.9em;color:#444}"""


def heading_id(title: str) -> str:
    """The anchor of a heading, as GitHub makes it: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return text.replace(" ", "-")


def inline(text: str) -> str:
    """Escape, then restore the inline markup the reports use."""
    out = html.escape(text, quote=False)
    out = out.replace("&lt;u&gt;", "<u>").replace("&lt;/u&gt;", "</u>")
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\\\|", "|", out)
    out = re.sub(r"\[([^\]]+)\]\((#[\w\-]+)\)", r'<a href="\2">\1</a>', out)
    return out


def _split_row(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def _image(alt: str, src: str, base_dir: Path | None) -> str:
    path = (base_dir / src) if base_dir is not None else Path(src)
    if path.is_file() and path.suffix.lower() in _MIME:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        src_attr = f"data:{_MIME[path.suffix.lower()]};base64,{data}"
    else:
        src_attr = html.escape(src)
    return f'<figure><img src="{src_attr}" alt="{html.escape(alt)}"><figcaption>{inline(alt)}</figcaption></figure>'


def markdown_to_html(text: str, title: str = "Report", base_dir: Path | None = None) -> str:
    """Convert the report's Markdown to one self-contained HTML page."""
    lines = text.splitlines()
    body, i = [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body.append("<pre><code>" + html.escape("\n".join(lines[i + 1:j])) + "</code></pre>")
            i = j + 1
            continue
        heading = _HEADING.match(line)
        if heading:
            level = len(heading["level"])
            body.append(f"<h{level} id=\"{heading_id(heading['text'])}\">{inline(heading['text'])}</h{level}>")
            i += 1
            continue
        image = _IMAGE.match(line.strip())
        if image:
            body.append(_image(image["alt"], image["src"], base_dir))
            i += 1
            continue
        if line.lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            header = _split_row(line)
            aligns = ["num" if c.strip().endswith(":") and not c.strip().startswith(":") else ""
                      for c in _split_row(lines[i + 1])]
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                rows.append(_split_row(lines[j]))
                j += 1
            out = ["<table><thead><tr>" + "".join(f"<th>{inline(h)}</th>" for h in header) + "</tr></thead><tbody>"]
            for row in rows:
                cells = "".join(
                    f'<td class="{aligns[k] if k < len(aligns) else ""}">{inline(c)}</td>' for k, c in enumerate(row)
                )
                out.append(f"<tr>{cells}</tr>")
            out.append("</tbody></table>")
            body.append("".join(out))
            i = j
            continue
        if re.match(r"^\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"^\s*[-*]\s+", lines[i]):
                items.append("<li>" + inline(re.sub(r"^\s*[-*]\s+", "", lines[i])) + "</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
            continue
        para = [line.strip()]  # the first line always belongs to the paragraph (e.g. a stray "|")
        i += 1
        while i < len(lines) and lines[i].strip() and not _HEADING.match(lines[i]) and not lines[i].startswith("```") \
                and not lines[i].lstrip().startswith("|") and not _IMAGE.match(lines[i].strip()) \
                and not re.match(r"^\s*[-*]\s+", lines[i]):
            para.append(lines[i].strip())
            i += 1
        body.append("<p>" + inline(" ".join(para)) + "</p>")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
