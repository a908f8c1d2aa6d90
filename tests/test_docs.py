"""The operator docs name every setting the service reads."""

import pytest

from app.config import Settings
from tests.conftest import REPO_ROOT

SETTINGS = sorted(f"FEEDBACK_{name.upper()}" for name in Settings.model_fields)


@pytest.mark.parametrize("document", ["README.md", ".env.example"])
def test_every_setting_is_documented(document: str) -> None:
    text = (REPO_ROOT / document).read_text()
    missing = [name for name in SETTINGS if name not in text]
    assert not missing, f"{document} does not mention {missing}"
