"""Reusable field types for the API contract."""

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8:
# both are rejected at the edge as validation errors instead of failing in the database.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def reject_unstorable(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


Text64 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(reject_unstorable),
]
Text128 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(reject_unstorable),
]
Text200 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(reject_unstorable),
]
LanguageTag = Annotated[
    str,
    StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"),
]
