"""Is a new JSON Schema of an event still compatible with the one committed for the same version?

The rule is conservative because producers and consumers deploy independently: a version's schema may
only grow by optional fields, widen a type (e.g. accept null too) or loosen a limit. Everything else
(a field removed or renamed, a type or format changed, an optional field made required, a new required
field, an enum value removed, a limit tightened, a different topic or key) needs a new schema version.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Schema = Mapping[str, Any]
_Seen = frozenset[tuple[str, str]]  # pairs of $refs being compared, to stop on recursive definitions

# Keywords that describe without constraining: changing them never breaks a reader.
_ANNOTATIONS = frozenset(
    {"title", "description", "examples", "default", "$comment", "deprecated", "readOnly", "writeOnly"}
)
_ROOT_ONLY = frozenset({"$id", "$schema", "$defs", "definitions"})
# A new schema may lower these...
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
# ...and raise these, because then it still accepts everything the old one did.
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_HANDLED = frozenset(
    {"$ref", "anyOf", "oneOf", "type", "format", "enum", "const", "properties", "required", "items"}
    | {"additionalProperties", *_LOWER_BOUNDS, *_UPPER_BOUNDS}
)
# Routing metadata the export adds at the root: moving an event to another topic or key breaks ordering.
_ROUTING = ("x-topic", "x-key")


@dataclass(frozen=True)
class BreakingChange:
    path: str  # where in the payload, e.g. "$.items[].sku"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def breaking_changes(old: Schema, new: Schema) -> list[BreakingChange]:
    """What in `new` would make a reader or writer of `old` fail; empty when compatible."""
    changes = [
        BreakingChange("$", f"{key} changed from {old[key]!r} to {new.get(key)!r}")
        for key in _ROUTING
        if key in old and old[key] != new.get(key)
    ]
    return changes + _Comparison(old, new).schemas(old, new, "$", frozenset())


def is_backward_compatible(old: Schema, new: Schema) -> bool:
    return not breaking_changes(old, new)


class _Comparison:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root

    def schemas(self, old: Schema, new: Schema, path: str, seen: _Seen) -> list[BreakingChange]:
        refs = (old.get("$ref", ""), new.get("$ref", ""))
        if refs != ("", "") and refs in seen:
            return []  # a recursive definition already being compared further up
        seen |= {refs}
        old, new = _resolve(self.old_root, old), _resolve(self.new_root, new)
        old_variants, new_variants = _variants(old), _variants(new)
        if len(old_variants) > 1 or len(new_variants) > 1:
            return self._unions(old_variants, new_variants, path, seen)
        old, new = old_variants[0], new_variants[0]
        if "$ref" in old or "$ref" in new:  # a one-variant anyOf around a reference
            return self.schemas(old, new, path, seen)
        return self._single(old, new, path, seen)

    def _unions(
        self, old_variants: list[Schema], new_variants: list[Schema], path: str, seen: _Seen
    ) -> list[BreakingChange]:
        # Every value the old schema accepted must still fit at least one of the new variants.
        return [
            BreakingChange(path, f"type changed: {_describe(variant)} is no longer accepted")
            for variant in old_variants
            if not any(not self.schemas(variant, candidate, path, seen) for candidate in new_variants)
        ]

    def _single(self, old: Schema, new: Schema, path: str, seen: _Seen) -> list[BreakingChange]:
        changes = _types(old, new, path) + _values(old, new, path) + _limits(old, new, path)
        if "properties" in old or "properties" in new:
            changes += self._objects(old, new, path, seen)
        if "items" in new:
            if "items" in old:
                changes += self.schemas(old["items"], new["items"], f"{path}[]", seen)
            else:
                changes.append(BreakingChange(path, "array items are now constrained"))
        changes += self._additional_properties(old, new, path, seen)
        return changes

    def _objects(self, old: Schema, new: Schema, path: str, seen: _Seen) -> list[BreakingChange]:
        old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        added = sorted(set(new_fields) - set(old_fields))
        changes = []
        for name, old_field in old_fields.items():
            field_path = f"{path}.{name}"
            if name not in new_fields:
                hint = f" (new fields: {', '.join(added)})" if added else ""
                changes.append(BreakingChange(field_path, f"field removed or renamed{hint}"))
                continue
            changes += self.schemas(old_field, new_fields[name], field_path, seen)
            if name in new_required and name not in old_required:
                changes.append(BreakingChange(field_path, "optional field made required"))
        new_required_fields = [name for name in added if name in new_required]
        changes += [BreakingChange(f"{path}.{name}", "new required field") for name in new_required_fields]
        return changes

    def _additional_properties(self, old: Schema, new: Schema, path: str, seen: _Seen) -> list[BreakingChange]:
        old_extra, new_extra = old.get("additionalProperties", True), new.get("additionalProperties", True)
        if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
            return self.schemas(old_extra, new_extra, f"{path}{{}}", seen)
        if new_extra is not True and old_extra != new_extra:
            return [BreakingChange(path, "additional properties are now restricted")]
        return []


def _resolve(root: Schema, schema: Schema) -> Schema:
    """Follow local `$ref`s (pydantic puts nested models in `$defs`); sibling keywords are kept."""
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = {**target, **{key: value for key, value in schema.items() if key != "$ref"}}
    return schema


def _variants(schema: Schema) -> list[Schema]:
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            rest = {key: value for key, value in schema.items() if key != keyword}
            return [{**rest, **variant} for variant in schema[keyword]]
    return [schema]


def _describe(schema: Schema) -> str:
    if "$ref" in schema:
        ref: str = schema["$ref"]
        return ref.rsplit("/", 1)[-1]
    if "const" in schema:
        return repr(schema["const"])
    return str(schema.get("type", "any value"))


def _type_set(schema: Schema) -> set[str] | None:
    declared = schema.get("type")
    if declared is None:
        return None  # any type
    return {declared} if isinstance(declared, str) else set(declared)


def _types(old: Schema, new: Schema, path: str) -> list[BreakingChange]:
    old_types, new_types = _type_set(old), _type_set(new)
    changes = []
    if new_types is not None and (old_types is None or not old_types <= new_types):
        changes.append(BreakingChange(path, f"type changed from {_names(old_types)} to {_names(new_types)}"))
    if "format" in new and old.get("format") != new["format"]:
        changes.append(BreakingChange(path, f"format changed from {old.get('format')!r} to {new['format']!r}"))
    for keyword in sorted(set(old) | set(new)):
        ignored = keyword in _HANDLED or keyword in _ANNOTATIONS or keyword in _ROOT_ONLY
        if not ignored and not keyword.startswith("x-") and old.get(keyword) != new.get(keyword):
            message = f"{keyword} changed from {old.get(keyword)!r} to {new.get(keyword)!r}"
            changes.append(BreakingChange(path, message))
    return changes


def _names(types: set[str] | None) -> str:
    return "any" if types is None else "|".join(sorted(types))


def _allowed_values(schema: Schema) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    return list(schema["enum"]) if "enum" in schema else None


def _values(old: Schema, new: Schema, path: str) -> list[BreakingChange]:
    old_values, new_values = _allowed_values(old), _allowed_values(new)
    if new_values is None:
        return []
    if old_values is None:
        return [BreakingChange(path, f"now restricted to the values {new_values!r}")]
    removed = [value for value in old_values if value not in new_values]
    return [BreakingChange(path, f"enum value(s) removed: {removed!r}")] if removed else []


def _limits(old: Schema, new: Schema, path: str) -> list[BreakingChange]:
    changes = []
    for keyword, tightened in [*((k, _higher) for k in _LOWER_BOUNDS), *((k, _lower) for k in _UPPER_BOUNDS)]:
        if keyword in new and (keyword not in old or tightened(new[keyword], old[keyword])):
            message = f"{keyword} tightened from {old.get(keyword)!r} to {new[keyword]!r}"
            changes.append(BreakingChange(path, message))
    return changes


def _higher(new: float, old: float) -> bool:
    return new > old


def _lower(new: float, old: float) -> bool:
    return new < old
