#!/usr/bin/env python3
"""LocalLog: append the TheHive object a responder runs on, as one JSON line, to a local file."""

import datetime
import fcntl
import json
import os

from cortexutils.responder import Responder

DEFAULT_TAG = "neurocortex:logged"
TAG_OPERATIONS = {
    "thehive:case": "AddTagToCase",
    "thehive:case_artifact": "AddTagToArtifact",
    "thehive:alert": "AddTagToAlert",
    # Tasks and task logs have no tags; TheHive applies AddTagToCase to the case they belong to.
    "thehive:case_task": "AddTagToCase",
    "thehive:case_task_log": "AddTagToCase",
}


class LocalLog(Responder):
    def run(self):
        path = self.get_param("config.path", None, "The log file path is not configured.")
        if not isinstance(path, str) or not os.path.isabs(path):
            # A relative path would land in whatever directory the engine happens to run workers from.
            self.error(f"path must be an absolute file path, got {path!r}.")
        if os.path.isdir(path):
            self.error(f"path {path} is a directory, not a file.")
        data = self.get_data()
        entry = {
            "timestamp": datetime.datetime.now(datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "dataType": self.data_type,
            "id": (data.get("_id") or data.get("id")) if isinstance(data, dict) else None,
            "tlp": self.tlp,
            "pap": self.pap,
            "message": self.get_param("message", ""),
            "parameters": self.get_param("parameters", {}),
            "data": data,
        }
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            self._append(path, line)
        except OSError as exc:
            self.error(f"Cannot write to {path}: {exc.strerror or exc}")
        self.report(
            {"path": path, "bytesWritten": len(line), "timestamp": entry["timestamp"], "id": entry["id"]}
        )

    @staticmethod
    def _append(path: str, line: bytes) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(fd, "ab") as handle:
            # Several jobs may run at once; the exclusive lock keeps each line whole whatever its size.
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def operations(self, raw):
        tag = self.get_param("config.tag", DEFAULT_TAG)
        operation = TAG_OPERATIONS.get(self.data_type)
        return [self.build_operation(operation, tag=tag)] if tag and operation else []


if __name__ == "__main__":
    LocalLog().run()
