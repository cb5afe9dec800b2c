"""JSON Schema validation that reads the schemas' patterns as their own dialect does.

A schema's ``pattern`` is an ECMA-262 regular expression, whose ``$`` is the end of the text; jsonschema searches it
with Python's ``re``, whose ``$`` also matches before a final line break: a model named ``'phantom\\n'`` passed
``^[A-Za-z0-9_.-]+$``, and a workflow device ``'cpu\\n'`` passed its pattern and split each job's shell command in two.
"""

from __future__ import annotations

import re
from functools import cache

__all__ = ["schema_validator"]


def schema_validator(schema: dict):
    """A JSON Schema (draft 2020-12) validator of ``schema`` whose patterns end where ECMA-262's do."""
    return _validator_class()(schema)


@cache
def _validator_class():
    import jsonschema

    return jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


def _pattern(validator, pattern: str, instance, schema: dict):
    import jsonschema

    if validator.is_type(instance, "string") and re.search(_ecma_end(pattern), instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _ecma_end(pattern: str) -> str:
    """``pattern`` for Python's ``re``: a final ``$`` (not an escaped one, ``\\$``) becomes ``\\Z``, the end of the
    text only."""
    backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    if pattern.endswith("$") and backslashes % 2 == 0:
        return pattern[:-1] + r"\Z"
    return pattern
