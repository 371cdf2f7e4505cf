"""The committed schema files are the contract: a model may only change compatibly within a version."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from shared.events import EVENT_CLASSES, Event
from shared.events.compatibility import breaking_changes
from shared.events.samples import sample_event
from shared.events.schema_export import (
    SCHEMA_DIR,
    event_schema,
    main,
    schema_file_name,
    stale_files,
    write_schemas,
)


def _committed(cls: type[Event]) -> dict:
    return json.loads((SCHEMA_DIR / schema_file_name(cls)).read_text())


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=schema_file_name)
def test_every_event_version_has_a_committed_schema(cls: type[Event]) -> None:
    assert (SCHEMA_DIR / schema_file_name(cls)).is_file()


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=schema_file_name)
def test_every_model_is_backward_compatible_with_the_committed_schema_of_its_version(
    cls: type[Event],
) -> None:
    changes = breaking_changes(_committed(cls), event_schema(cls))

    assert not changes, f"{cls.__name__} broke its v{cls.schema_version} schema; bump schema_version: {changes}"


def test_the_committed_schema_files_equal_a_fresh_export() -> None:
    problems = stale_files()

    assert not problems, "\n".join([*problems, "run `python -m shared.events.schema_export`"])


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=SCHEMA_DIR, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=schema_file_name)
def test_no_committed_revision_of_a_schema_file_is_broken_by_the_current_model(cls: type[Event]) -> None:
    # Without this, regenerating a file in place would hide a breaking change from the tests above.
    if shutil.which("git") is None or _git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("needs the git history of the schema files")
    name = schema_file_name(cls)
    for commit in _git("log", "--format=%H", "--", name).stdout.split():
        revision = _git("show", f"{commit}:./{name}")
        if revision.returncode != 0:
            continue  # the commit that deleted the file
        changes = breaking_changes(json.loads(revision.stdout), event_schema(cls))
        assert not changes, f"{name} as of commit {commit[:10]} is broken by the current model: {changes}"


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=schema_file_name)
def test_every_committed_schema_is_valid_and_accepts_the_sample_event(cls: type[Event]) -> None:
    schema = _committed(cls)
    Draft202012Validator.check_schema(schema)

    Draft202012Validator(schema).validate(sample_event(cls).model_dump(mode="json"))


def test_the_export_refuses_to_overwrite_a_version_with_a_breaking_change(tmp_path: Path) -> None:
    cls = EVENT_CLASSES[0]
    old = event_schema(cls)
    old["properties"]["legacy_field"] = {"type": "string"}
    old["required"].append("legacy_field")
    committed = json.dumps(old)
    (tmp_path / schema_file_name(cls)).write_text(committed)

    refused = write_schemas(tmp_path)

    assert refused == [
        f"{schema_file_name(cls)}: not overwritten, the change is breaking:\n  $.legacy_field: field removed or renamed"
    ]
    assert (tmp_path / schema_file_name(cls)).read_text() == committed
    assert main(["--dir", str(tmp_path)]) == 1


def test_the_export_writes_missing_files_and_the_check_then_passes(tmp_path: Path) -> None:
    assert main(["--check", "--dir", str(tmp_path)]) == 1

    assert main(["--dir", str(tmp_path)]) == 0

    assert main(["--check", "--dir", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(map(schema_file_name, EVENT_CLASSES))
