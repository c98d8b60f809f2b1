"""Test defaults: data from the repository's ../shared/data (read-only), derived files in a tmp dir."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("NTPT_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _ntpt_cache_dir(tmp_path_factory):
    """Point NTPT_CACHE_DIR at a session tmp dir unless the caller chose one."""
    with pytest.MonkeyPatch.context() as patch:
        if "NTPT_CACHE_DIR" not in os.environ:
            patch.setenv("NTPT_CACHE_DIR", str(tmp_path_factory.mktemp("ntpt-cache")))
        yield
