"""Fixtures of the API tests (run by scripts/test-api.sh)."""

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers  # noqa: E402


@pytest.fixture(scope="session")
def api_url():
    """Public API of the `dev` server scripts/test-api.sh started (ORIGIN_DISCOVERY_API)."""
    url = os.environ.get("ORIGIN_DISCOVERY_API")
    if not url:
        pytest.fail("ORIGIN_DISCOVERY_API is not set: run these tests through scripts/test-api.sh")
    return url


@pytest.fixture(scope="session")
def document(api_url):
    """The served OpenAPI document."""
    status, doc = servers.get_json(f"{api_url}/openapi.json")
    assert status == 200, status
    return doc


@pytest.fixture(scope="session")
def message_schemas():
    """docs/schemas/*.json by file name."""
    directory = servers.ROOT / "docs" / "schemas"
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}
