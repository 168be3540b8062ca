"""The image-update hook of a catalog refresh (services/catalog_refresh.py): runners that pull images get
the images of the enabled, unpinned workers, after those workers followed the catalog.

The docker runner is written elsewhere; this runner only records what it is given, so that the hook's
contract is pinned here. The services run for real, on a SQLite database in a temporary data directory."""

from __future__ import annotations

import json
from pathlib import Path

from neurocortex.app import build_services
from neurocortex.auth.context import AuthContext
from neurocortex.services import catalog_refresh, workers
from neurocortex.settings import Settings


class RecordingImageRunner:
    name = "images"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def available(self) -> bool:
        return True

    async def update_images(self, images: list[str]) -> dict[str, str | None]:
        self.calls.append(images)
        return {image: (None if image.endswith(":2") else "manifest unknown") for image in images}


def write_catalog(path: Path, images: dict[str, str]) -> None:
    path.write_text(json.dumps([
        {"name": name, "version": "1.0", "author": "t", "url": "u", "license": "l", "description": "d",
         "dataTypeList": ["ip"], "dockerImage": image}
        for name, image in images.items()
    ]))  # fmt: skip


async def test_image_updaters_get_the_images_of_unpinned_workers(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog" / "sub" / "analyzers.json"
    catalog.parent.mkdir(parents=True)
    write_catalog(catalog, {"Free": "example.invalid/free:1", "Held": "example.invalid/held:1"})
    settings = Settings(
        data_dir=tmp_path / "data", analyzers=[str(catalog)], responders=[], runners=["process"]
    )
    svc = await build_services(settings)
    try:
        runner = RecordingImageRunner()
        assert isinstance(runner, catalog_refresh.ImageUpdater)
        svc.runners["images"] = runner
        admin = AuthContext("admin", "cortex", frozenset({"orgadmin"}), "key")
        await workers.enable(svc, admin, "analyzer", "Free_1_0", {"name": "free"})
        await workers.enable(svc, admin, "analyzer", "Held_1_0", {"name": "held", "pinned": True})

        # the same image tag again: the images in use are handed over all the same (a tag may have moved)
        result = await catalog_refresh.refresh(svc)
        assert runner.calls == [["example.invalid/free:1"]]
        assert result.images == {"example.invalid/free:1": "manifest unknown"} and result.moves == []

        # a new image in the catalog: the unpinned worker takes it first, then it is pulled
        write_catalog(catalog, {"Free": "example.invalid/free:2", "Held": "example.invalid/held:2"})
        result = await catalog_refresh.refresh(svc)
        assert runner.calls[-1] == ["example.invalid/free:2"]
        assert result.images == {"example.invalid/free:2": None}
        assert [str(m) for m in result.moves] == [
            "analyzer free of cortex: image example.invalid/free:1 → example.invalid/free:2"
        ]
        changed = {c.name: c.detail for c in result.changes}
        assert changed == {
            "Free": "1.0: image example.invalid/free:1 → example.invalid/free:2",
            "Held": "1.0: image example.invalid/held:1 → example.invalid/held:2",
        }
        held = await workers.by_id(svc, workers.worker_id("cortex", "held", "analyzer"))
        assert held is not None and held["dockerImage"] == "example.invalid/held:1"
    finally:
        await svc.db.close()
