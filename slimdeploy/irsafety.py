"""OpenVINO IR files are untrusted input: check one before any library opens it (the counterpart of
``onnxsafety``): the ``.xml`` is parsed with its DOCTYPE refused (no XML entity is ever expanded), and
the ``.bin`` must hold exactly the bytes its Const layers refer to.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.parsers import expat

from slimdeploy.errors import ModelFileError


def read_ir_xml(path: Path, what: str = "artifact") -> ET.Element:
    """The IR's XML tree; a document type declaration (where entities are declared: "billion laughs",
    external entities) is refused before any entity is read. pyexpat directly: only there does a
    handler's exception stop the parser at once."""
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
    """The bytes of ``.bin`` the IR refers to: max(offset + size) over its Const layers, sub-graphs' included."""
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
    """Raise ``ModelFileError`` unless ``path`` is a well-formed IR whose ``.bin`` holds exactly the bytes its
    Const layers refer to (OpenVINO writes no padding); return the XML root."""
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
