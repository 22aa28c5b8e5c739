"""Property-based tests: the JSON, TOML and IDX readers either load valid data or raise
the documented one-line error (UserError / DataError), never anything else."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimdeploy.recipes import recipe_from_dict
from slimdeploy.data import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from slimdeploy.errors import DataError, UserError
from slimdeploy.fsutil import read_json, read_toml

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

VALID_RECIPE = b"""name = "t"
[model]
input_shape = [28, 28]
layers = [{ type = "flatten" }, { type = "dense", units = 10, activation = "softmax" }]
[training]
epochs = 1
"""


def _one_line(error: Exception) -> None:
    assert "\n" not in str(error) and str(error)


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buffer = bytearray(data)
    for position, value in edits:
        if buffer:
            buffer[position % len(buffer)] = value
    return bytes(buffer[:cut] if cut is not None else buffer)


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6)
cuts = st.one_of(st.none(), st.integers(0, 400))


@FAST
@given(document=st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=10),
                             lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
                             max_leaves=20),
       edit=edits, cut=cuts)
def test_json_reader_on_mutated_documents(tmp_path, document, edit, cut):
    original = json.dumps(document).encode()
    path = tmp_path / "x.json"
    path.write_bytes(mutate(original, edit, cut))
    try:
        loaded = read_json(path)
    except UserError as error:
        _one_line(error)
    else:
        if not edit and cut is None:
            assert loaded == document


@FAST
@given(edit=edits, cut=cuts)
def test_toml_recipe_reader_on_mutated_recipes(tmp_path, edit, cut):
    path = tmp_path / "r.toml"
    path.write_bytes(mutate(VALID_RECIPE, edit, cut))
    try:
        recipe = recipe_from_dict(read_toml(path, "recipe"), str(path))
    except UserError as error:
        _one_line(error)
    else:
        assert recipe.layers and recipe.training.epochs >= 1


def _idx_bytes(images: bool) -> bytes:
    rng = np.random.default_rng(0)
    if images:
        array = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
        return struct.pack(">IIII", IMAGES_MAGIC, 3, 4, 4) + array.tobytes()
    array = rng.integers(0, 10, 3, dtype=np.uint8)
    return struct.pack(">II", LABELS_MAGIC, 3) + array.tobytes()


@FAST
@pytest.mark.parametrize("images", [True, False])
@given(edit=edits, cut=cuts, compressed_cut=cuts)
def test_idx_reader_on_mutated_files(tmp_path, images, edit, cut, compressed_cut):
    raw = mutate(_idx_bytes(images), edit, cut)
    packed = gzip.compress(raw)
    if compressed_cut is not None:
        packed = packed[:compressed_cut]
    path = tmp_path / "f-idx.gz"
    path.write_bytes(packed)
    magic = IMAGES_MAGIC if images else LABELS_MAGIC
    try:
        array = read_idx(path, magic)
    except DataError as error:
        _one_line(error)
        assert str(path) in str(error)
    else:
        assert array.dtype == np.uint8 and array.ndim == (3 if images else 1)


RANDOM_BYTE_READERS = {
    # name: (file name, reader, the documented error it may raise)
    "json": ("x.json", read_json, UserError),
    "toml": ("r.toml", read_toml, UserError),
    "idx": ("g-idx.gz", lambda path: read_idx(path, IMAGES_MAGIC), DataError),
}


@FAST
@pytest.mark.parametrize("reader", sorted(RANDOM_BYTE_READERS))
@given(payload=st.binary(max_size=300))
def test_readers_on_random_bytes(tmp_path, reader, payload):
    name, read, documented_error = RANDOM_BYTE_READERS[reader]
    path = tmp_path / name
    path.write_bytes(payload)
    try:
        read(path)
    except documented_error as error:
        _one_line(error)
