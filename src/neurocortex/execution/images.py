"""Container images of local workers (`neurocortex neurons image NAME`): private analyzers "dockerized and
stored locally", for the docker runner.

A worker directory without a Dockerfile gets one written by us, in the community's shape: a Python base,
the directory copied under /worker, its requirements installed, the program as the entrypoint (the runner
adds `/job` as its argument). A directory that has a Dockerfile keeps it: it is built as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from neurocortex.execution.environments import requirements_name, worker_directory
from neurocortex.services.catalog import Catalog, WorkerDefinition

DEFAULT_BASE = "python:3-slim"
TAG_PREFIX = "neurocortex-local/"


class ImageError(ValueError):
    pass


@dataclass
class ImagePlan:
    directory: Path
    definitions: list[WorkerDefinition]
    tag: str
    dockerfile: Path
    written: bool = False
    """Whether the Dockerfile was written now (else the directory's own was kept)."""


def definitions_named(catalog: Catalog, name: str) -> list[WorkerDefinition]:
    """The local definitions of the worker directory, definition name or id `name` (case-insensitive),
    with every flavor sharing that directory."""
    wanted = name.casefold()
    found = [
        definition
        for definitions in (catalog.analyzers, catalog.responders)
        for definition in definitions.values()
        if definition.command
        and wanted in (definition.id.casefold(), definition.name.casefold(), _directory_name(definition))
    ]
    directories = {worker_directory(d) for d in found}
    if len(directories) > 1:
        raise ImageError(f"{name} names workers of several directories: {sorted(map(str, directories))}")
    if not found:
        return []
    directory = directories.pop()
    return sorted(
        (d for defs in (catalog.analyzers, catalog.responders) for d in defs.values()
         if d.command and worker_directory(d) == directory),
        key=lambda d: d.id,
    )  # fmt: skip


def plan(definitions: list[WorkerDefinition], tag: str | None, base: str) -> ImagePlan:
    """Write the Dockerfile when the directory has none; the image's tag."""
    directory = worker_directory(definitions[0])
    if directory is None:
        raise ImageError(f"{definitions[0].id} has no local directory")
    commands = {d.command for d in definitions}
    if len(commands) > 1:
        # one image has one entrypoint; the community builds one image per program
        raise ImageError(f"the flavors of {directory.name} run different programs ({', '.join(sorted(commands))})"
                         ": give the directory a Dockerfile of its own")  # fmt: skip
    version = definitions[0].version
    tag = tag or f"{TAG_PREFIX}{directory.name.lower()}:{version}"
    dockerfile = directory / "Dockerfile"
    result = ImagePlan(directory, definitions, tag, dockerfile)
    if not dockerfile.exists():
        dockerfile.write_text(dockerfile_text(definitions[0], directory, base))
        result.written = True
    return result


def dockerfile_text(definition: WorkerDefinition, directory: Path, base: str) -> str:
    assert definition.command is not None and definition.root is not None
    root = definition.root.resolve()
    name = directory.relative_to(root).as_posix()
    program = definition.command_path
    command = program.relative_to(root).as_posix() if program else definition.command
    requirements = requirements_name(definition, directory)
    lines = [
        f"# Written by `neurocortex neurons image` for {name}; edit it freely, it is never overwritten.",
        f"FROM {base}",
        "WORKDIR /worker",
    ]
    if (directory / requirements).is_file():
        # the requirements first, so that a change of the code alone reuses the installed layer
        lines += [
            f"COPY {requirements} {name}/{requirements}",
            "RUN "
            + json.dumps(
                [
                    "python",
                    "-m",
                    "pip",
                    "install",
                    "--no-cache-dir",
                    "--root-user-action=ignore",
                    "-r",
                    f"{name}/{requirements}",
                ]
            ),  # fmt: skip
        ]
    lines.append(f"COPY . {name}/")
    # as the process runner does: .py programs with the image's python, others directly
    entrypoint = ["python", command] if command.endswith(".py") else [f"/worker/{command}"]
    lines.append("ENTRYPOINT " + json.dumps(entrypoint))
    return "\n".join(lines) + "\n"


def _directory_name(definition: WorkerDefinition) -> str:
    directory = worker_directory(definition)
    return directory.name.casefold() if directory else ""
