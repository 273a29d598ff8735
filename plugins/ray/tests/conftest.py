"""A real local Ray cluster of two nodes (a head on 127.0.0.2 and a worker on 127.0.0.3), one per test
module that asks for it, stopped (its process groups killed, its files removed) afterwards.

Without the ``ray`` package the tests skip, saying so; CI installs it (the dev env holds plugins/ray) and
sets LAMINA_REQUIRE_RAY=1, which turns that skip into a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HAS_RAY = importlib.util.find_spec("ray") is not None


def require_ray() -> None:
    if HAS_RAY:
        return
    if os.environ.get("LAMINA_REQUIRE_RAY") == "1":
        pytest.fail(
            "LAMINA_REQUIRE_RAY=1 but the ray package is not installed (the dev env installs plugins/ray)"
        )
    pytest.skip("the ray package is not installed (pip install lamina-ray, or use the hatch dev env)")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    require_ray()
    from lamina_ray.local_cluster import LocalRayCluster

    ray_home = Path.home() / ".ray"
    had_ray_home = ray_home.exists()
    # Short: Ray's socket paths under it must stay within the OS's limit.
    cluster = LocalRayCluster(tempfile.mkdtemp(prefix="lr", dir="/tmp"), workers=1, cpus_per_node=1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        if not had_ray_home:
            shutil.rmtree(ray_home, ignore_errors=True)
