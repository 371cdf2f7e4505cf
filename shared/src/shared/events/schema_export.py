"""Exports the JSON Schema of every event class and version to `shared/schemas/<Type>.v<N>.json`.

    python -m shared.events.schema_export           # write; refuses a breaking change to a version
    python -m shared.events.schema_export --check   # exit 1, listing missing or stale files

The files are committed: they are the contract other readers code against, and the baseline a test
compares the models with. A breaking change therefore needs a new schema version (a new class next to
the old one); the old version's file stays, because records of it may still be in the topics.
"""

import argparse
import difflib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import Event
from .compatibility import breaking_changes
from .registry import EVENT_CLASSES

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "urn:ecommerce-saga:event-schema:"


def schema_file_name(cls: type[Event]) -> str:
    return f"{cls.event_type}.v{cls.schema_version}.json"


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """The model's JSON Schema plus what a reader needs to find the records: topic, key, identity."""
    return {
        **cls.model_json_schema(),
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": ID_PREFIX + schema_file_name(cls),
        "title": cls.event_type,
        "x-event-type": cls.event_type,
        "x-schema-version": cls.schema_version,
        "x-topic": cls.topic,
        "x-key": cls.key_field,
    }


def render(schema: dict[str, Any]) -> str:
    # Sorted keys and a trailing newline: the file only changes when the schema does.
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def exported_files() -> dict[str, str]:
    """File name -> content, for every event class and version this code knows."""
    return {schema_file_name(cls): render(event_schema(cls)) for cls in EVENT_CLASSES}


def stale_files(directory: Path = SCHEMA_DIR) -> list[str]:
    """One entry per file that is missing or differs from a fresh export (empty when current)."""
    problems = []
    for name, fresh in exported_files().items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif (committed := path.read_text()) != fresh:
            diff = difflib.unified_diff(
                committed.splitlines(),
                fresh.splitlines(),
                f"committed/{name}",
                f"exported/{name}",
                lineterm="",
            )
            problems.append(f"{name}: stale\n" + "\n".join(list(diff)[:60]))
    return problems


def write_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Writes new and compatibly changed files; returns why any breaking change was refused."""
    directory.mkdir(parents=True, exist_ok=True)
    refused = []
    for name, fresh in exported_files().items():
        path = directory / name
        if path.exists():
            committed = path.read_text()
            if committed == fresh:
                continue
            breaking = breaking_changes(json.loads(committed), json.loads(fresh))
            if breaking:
                reasons = "\n".join(f"  {change}" for change in breaking)
                refused.append(f"{name}: not overwritten, the change is breaking:\n{reasons}")
                continue
        path.write_text(fresh)
        print(f"wrote {path}")
    return refused


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files are not current")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="where the schema files live")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_files(args.dir)
        advice = "run `python -m shared.events.schema_export` and commit the files"
    else:
        problems = write_schemas(args.dir)
        advice = "give the event a new schema version: a new class with schema_version + 1 next to the old one"
    if problems:
        print(*problems, "", advice, sep="\n", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
