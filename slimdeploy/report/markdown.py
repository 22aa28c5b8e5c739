"""Render a report Document as GitHub-flavoured Markdown.

report.md shows every section in full with the PNGs beside it; the GitHub job summary
(``images=False, fold_details=True``) has no image files to point at and folds the
long tables into <details>.
"""

from __future__ import annotations

from slimdeploy.report.document import Bullets, Document, Figure, Paragraph, Section, Table


def render(doc: Document, *, images: bool = True, fold_details: bool = False, sections: list[Section] | None = None) -> str:
    lines = [f"# {doc.title}", ""]
    lines += _blocks(doc.lead, images)
    for section in doc.sections if sections is None else sections:
        if fold_details and section.detail:
            lines += ["<details>", f"<summary>{section.title}</summary>", ""]
            lines += [f"### {section.title}", ""] + _blocks(section.blocks, images)
            lines += ["</details>", ""]
        else:
            lines += [f"## {section.title}", ""] + _blocks(section.blocks, images)
    return "\n".join(lines).rstrip() + "\n"


def _blocks(blocks: list, images: bool) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Paragraph):
            lines += [(f"**{block.lead}** " if block.lead else "") + block.text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            lines += _table(block)
        elif isinstance(block, Figure):
            if images:
                lines += [f"![{block.alt}]({block.name})", "", f"*{block.caption}*", ""]
        else:  # pragma: no cover - a new block type must be rendered here
            raise TypeError(f"unknown block {type(block).__name__}")
    return lines


def _cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(table: Table) -> list[str]:
    lines = [f"**{table.caption}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_cell(h) for h in table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return lines + [""]
