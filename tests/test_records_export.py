"""export.json as records: a file written by the previous version reads and writes back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimdeploy.errors import UserError
from slimdeploy.export.api import FIELD_ORDER
from slimdeploy.records.export import Artifact, ExportManifest, ModelFacts

PREVIOUS = Path(__file__).parent / "fixtures" / "previous_version" / "exports" / "export.json"


def previous_raw() -> dict:
    return json.loads(PREVIOUS.read_text())


def test_a_previous_export_json_round_trips_unchanged():
    raw = previous_raw()
    manifest = ExportManifest.from_json(raw)
    assert manifest.to_json() == raw
    # Key order too: the file's shape is written as it was.
    assert list(manifest.to_json()) == list(raw)
    assert [list(a.to_json()) for a in manifest.artifacts] == [list(a) for a in raw["artifacts"]]
    assert json.dumps(ExportManifest.load(PREVIOUS).to_json()) == json.dumps(raw)


def test_records_are_typed_where_the_readers_need_them():
    manifest = ExportManifest.load(PREVIOUS)
    assert all(isinstance(a, Artifact) for a in manifest.artifacts)
    assert all(isinstance(f, ModelFacts) for f in manifest.models.values())
    first = manifest.artifacts[0]
    assert (first.model, first.target, first.path, first.valid) == ("dense", "onnx", "dense.onnx", True)
    assert first.file_sha256 == {"dense.onnx": first.sha256}
    assert first.extra["opset"] == 17  # a target's own facts stay readable
    assert manifest.models["structured"].keras_test_accuracy == pytest.approx(0.1515)
    assert manifest.failed() == [] and len(manifest.valid_artifacts()) == 6


def test_the_documented_artifact_fields_lead_each_artifact_in_order():
    for artifact in previous_raw()["artifacts"]:
        assert tuple(artifact)[:len(FIELD_ORDER)] == FIELD_ORDER


def test_an_artifact_built_from_its_facts_lists_the_documented_fields_first():
    artifact = Artifact.from_json({"opset": 17, "target": "onnx", "model": "m", "valid": True})
    written = artifact.to_json()
    assert tuple(written) == (*FIELD_ORDER, "opset")
    assert written["path"] is None and written["valid"] is True


def test_a_partial_record_keeps_only_what_it_has():
    raw = {"schema_version": 1, "source": "m.keras", "settings": {}, "sources_sha256": {"m": "ab"}, "models": {},
           "artifacts": []}
    assert list(ExportManifest.from_json(raw).to_json()) == list(raw)


def test_a_newer_schema_is_refused():
    with pytest.raises(UserError, match="has schema_version 2; this slimdeploy reads version 1"):
        ExportManifest.from_json({**previous_raw(), "schema_version": 2}, "export.json")
