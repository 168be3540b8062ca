"""Every bundled definition must load in Cortex (and its CI checks) and point at a runnable program."""

import json
import os
import re
import sys

import pytest

from .conftest import ANALYZERS, RESPONDERS

DEFINITIONS = sorted([*ANALYZERS.glob("*/*.json"), *RESPONDERS.glob("*/*.json")])
REQUIRED = {
    "name": str,
    "version": str,
    "author": str,
    "url": str,
    "license": str,
    "description": str,
    "dataTypeList": list,
    "command": str,
    "baseConfig": str,
}
ITEM_REQUIRED = {"name": str, "description": str, "type": str, "multi": bool, "required": bool}
ITEM_TYPES = {"string": str, "number": (int, float), "boolean": bool}
# Only the standard library and cortexutils: neurons run with the server's interpreter.
STDLIB = set(sys.stdlib_module_names)


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def root_of(path):
    return path.parent.parent


def test_there_are_bundled_neurons():
    names = {load(p)["name"] for p in DEFINITIONS}
    assert {"ObservableValidator", "HashIdentifier", "IOCExtractor", "FileInfo"} <= names
    assert {"Webhook", "LocalLog"} <= names


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.stem)
def test_definition_fields(path):
    definition = load(path)
    for field, kind in REQUIRED.items():
        assert isinstance(definition.get(field), kind), f"{field} missing or not a {kind.__name__}"
    assert re.fullmatch(r"[^\s/]+", definition["name"]) and ".." not in definition["name"]
    assert re.fullmatch(r"\d+(\.\d+)+", definition["version"])
    assert definition["author"] == "neurocortex"
    assert definition["license"] == "AGPL-V3"
    assert definition["dataTypeList"] and all(isinstance(t, str) for t in definition["dataTypeList"])
    is_responder = root_of(path) == RESPONDERS
    assert all(t.startswith("thehive:") for t in definition["dataTypeList"]) == is_responder
    assert "dockerImage" not in definition
    assert isinstance(definition.get("config", {}), dict)
    for item in definition.get("configurationItems", []):
        for field, kind in ITEM_REQUIRED.items():
            assert isinstance(item.get(field), kind), f"item {item.get('name')}: {field}"
        assert item["type"] in ITEM_TYPES
        if "defaultValue" in item:
            values = item["defaultValue"] if item["multi"] else [item["defaultValue"]]
            if item["multi"]:
                assert isinstance(item["defaultValue"], list)
            for value in values:
                assert isinstance(value, ITEM_TYPES[item["type"]]) and not (
                    item["type"] == "number" and isinstance(value, bool)
                )
        assert not {"default", "defaultvalue"} & set(item), "misspelt defaultValue is ignored by Cortex"


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.stem)
def test_command_stays_inside_its_root_and_is_executable(path):
    definition = load(path)
    root = root_of(path).resolve()
    command = (root / definition["command"]).resolve()
    assert command.is_relative_to(root), "command escapes the analyzers/responders root"
    assert command.is_file()
    assert command.parent == path.parent.resolve(), "program and definition live in the same directory"
    assert os.access(command, os.X_OK), "Cortex executes the command directly"
    assert command.read_text().startswith("#!/usr/bin/env python3\n")


def test_worker_ids_are_unique():
    ids = [(load(p)["name"] + "_" + load(p)["version"]).replace(".", "_") for p in DEFINITIONS]
    assert len(ids) == len(set(ids)), ids
    names = [load(p)["name"] for p in DEFINITIONS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("directory", sorted({p.parent for p in DEFINITIONS}), ids=lambda d: d.name)
def test_directory_layout(directory):
    requirements = (directory / "requirements.txt").read_text().split()
    assert "cortexutils" in requirements
    assert (directory / "README.md").is_file()


@pytest.mark.parametrize("directory", sorted({p.parent for p in DEFINITIONS}), ids=lambda d: d.name)
def test_only_standard_library_and_cortexutils(directory):
    local = {p.stem for p in directory.glob("*.py")}
    for source in directory.glob("*.py"):
        for match in re.finditer(r"^\s*(?:from|import)\s+([\w.]+)", source.read_text(), re.MULTILINE):
            top = match.group(1).split(".")[0]
            assert top in STDLIB or top in local or top == "cortexutils", f"{source.name} imports {top}"
        # A module named like a standard one would shadow it for the program (its directory comes first).
        assert source.stem not in STDLIB, f"{source.name} shadows the standard library"
