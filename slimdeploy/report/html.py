"""Render a report Document as one self-contained HTML page.

No external files, scripts, fonts or styles: the plots are embedded as base64
data URIs, so the page can be mailed, attached as a CI artifact or opened offline.
"""

from __future__ import annotations

import base64
from html import escape

from slimdeploy.report.document import Bullets, Document, Figure, Paragraph, Table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; display: inline; }
.answer { background: #f3f7fb; border-left: 4px solid #1f77b4; padding: 0.6rem 1rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
caption { font-weight: 600; text-align: left; padding: 0.3rem 0; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { font-size: 0.85rem; color: #555; }
details { margin-top: 1.5rem; } summary { cursor: pointer; }
.scroll { overflow-x: auto; }
"""


def render(doc: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(doc.title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(doc.title)}</h1>",
        '<div class="answer">',
        *_blocks([b for b in doc.lead if not isinstance(b, Figure)]),
        "</div>",
        *_blocks([b for b in doc.lead if isinstance(b, Figure)]),
    ]
    for section in doc.sections:
        parts += ["<details open>", f"<summary><h2>{escape(section.title)}</h2></summary>", *_blocks(section.blocks), "</details>"]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _blocks(blocks: list) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Paragraph):
            lead = f"<strong>{escape(block.lead)}</strong> " if block.lead else ""
            out.append(f"<p>{lead}{escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            out.append(_table(block))
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(block.alt)}">'
                       f"<figcaption>{escape(block.caption)}</figcaption></figure>")
        else:  # pragma: no cover
            raise TypeError(f"unknown block {type(block).__name__}")
    return out


def _table(table: Table) -> str:
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.headers) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in table.rows)
    return f'<div class="scroll"><table>{caption}<thead>{head}</thead><tbody>{body}</tbody></table></div>'
