"""OpenVINO IR files are untrusted input: check one before any library opens it (the IR's
counterpart of ``onnxsafety``).

The ``.xml`` is parsed with its DOCTYPE refused (no XML entity is ever expanded), and the
``.bin`` beside it must hold exactly the bytes its Const layers refer to. The bench checks an
IR here before any worker starts (``bench.artifacts``); the OpenVINO session checks it again
for library callers and export verification, which open files without that inspection.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from slimdeploy.errors import ModelFileError


def read_ir_xml(path: Path, what: str = "artifact") -> ET.Element:
    """The IR's XML tree, parsed as untrusted input: a document type declaration (where XML
    entities are declared: the "billion laughs" and external-entity attacks) is refused
    before any entity is read. An OpenVINO IR never has one. pyexpat directly, not
    ``ET.parse``: a handler's exception stops expat at once only there (defusedxml does the
    same, and is not a dependency)."""
    from xml.parsers import expat

    def refuse(*_):
        raise ModelFileError(f"{what} {path} refused: it has a DOCTYPE declaration, which an OpenVINO IR never has; "
                             "slimdeploy does not expand XML entities")

    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        with open(path, "rb") as file:
            parser.ParseFile(file)
        return builder.close()
    except (expat.ExpatError, OSError) as exc:
        raise ModelFileError(f"{what} {path} is not a readable OpenVINO IR ({exc})") from exc


def ir_weights_extent(root: ET.Element, path: Path, what: str = "artifact") -> int:
    """The bytes of ``.bin`` the IR refers to: max(offset + size) over its Const layers
    (those of sub-graphs included: they share the file)."""
    needed = 0
    for layer in root.iter("layer"):
        data = layer.find("data")
        if layer.get("type") != "Const" or data is None or (data.get("offset") is None and data.get("size") is None):
            continue
        try:
            offset, size = int(data.get("offset", "")), int(data.get("size", ""))
        except ValueError:
            offset = size = -1
        if offset < 0 or size < 0:
            raise ModelFileError(f"{what} {path} is malformed: Const layer {layer.get('name')!r} has offset="
                                 f"{data.get('offset')!r} and size={data.get('size')!r}, not byte counts")
        needed = max(needed, offset + size)
    return needed


def check_openvino_ir(path: str | Path, what: str = "artifact") -> ET.Element:
    """Raise ``ModelFileError`` unless ``path`` is a well-formed IR whose ``.bin`` holds exactly
    the bytes its Const layers refer to; return the XML root. A shorter file is truncated; a
    longer one is not the file saved with this XML (OpenVINO writes no padding), and reading
    it would run weights nobody exported."""
    path = Path(path)
    root = read_ir_xml(path, what)
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise ModelFileError(f"{what} {path}: its weights file {weights.name} is missing")
    needed, held = ir_weights_extent(root, path, what), weights.stat().st_size
    if held < needed:
        raise ModelFileError(f"{what} {path} is malformed: {weights.name} holds {held} bytes but its Const layers "
                             f"need {needed} (truncated)")
    if held > needed:
        raise ModelFileError(f"{what} {path} is malformed: {weights.name} holds {held} bytes but its Const layers "
                             f"need {needed} ({held - needed} bytes too many: not the weights saved with this .xml)")
    return root
