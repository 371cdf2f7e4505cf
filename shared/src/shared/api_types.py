"""Values as the HTTP APIs accept them: only what Postgres can store, and only what the OpenAPI
document says, so a client (or a fuzzer) that follows the schema is never refused and never
reaches a database error.

- Text never holds NUL: Postgres `text` cannot store it (the insert fails, which used to be a 500).
  The rule is a `pattern` in the schema, so clients see it. A lone UTF-16 surrogate cannot be
  stored either; pydantic refuses it for every `str` already.
- Integers are JSON Schema integers: `2.0` is the integer 2 (JSON Schema says so), while `2.5`,
  `"2"` and `true` are refused rather than rounded or coerced.
- An optional query parameter sent empty (`?cursor=`) is the same as one not sent, where the
  parameter's schema admits the empty string.
"""

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict

# Python's str.isspace() characters, spelled out so that pydantic (Rust regex), the schema's readers
# (ECMA-262) and Python agree on what "blank" means.
_SPACE = r"\x09-\x0d\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\x00]*$"
NOT_BLANK = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"

# What a validation problem says instead of "String should match pattern '<the regex>'".
PATTERN_MESSAGES = {
    NO_NUL: "must not contain a NUL character",
    NOT_BLANK: "must not be blank, nor contain a NUL character",
}

# Storable text, possibly blank. Add lengths where used: `Annotated[Text, Field(max_length=64)]`.
Text = Annotated[str, Field(pattern=NO_NUL)]
# Storable text with at least one character that is not white space.
NonBlankText = Annotated[str, Field(pattern=NOT_BLANK)]


def _integral_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A count or an amount in a JSON body.
JsonInt = Annotated[int, BeforeValidator(_integral_number), Strict()]


def empty_as_none(value: Any) -> Any:
    return None if value == "" else value


# For `Annotated[X | None, EmptyIsAbsent, Query()]`: `?name=` means the parameter was not given.
EmptyIsAbsent = BeforeValidator(empty_as_none)
