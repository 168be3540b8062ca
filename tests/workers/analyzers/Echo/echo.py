#!/usr/bin/env python3
"""Test analyzer: echoes its input, its configuration (secrets removed) and its environment facts."""

import os
import sys

from cortexutils.analyzer import Analyzer


class Echo(Analyzer):
    def run(self):
        report = {
            "data": self.get_data(),
            "dataType": self.data_type,
            "tlp": self.tlp,
            "pap": self.get_param("pap", 2),
            "message": self.get_param("message", ""),
            "parameters": self.get_param("parameters", {}),
            "config": {k: v for k, v in self.get_param("config", {}).items() if k != "api_key"},
            "has_api_key": self.get_param("config.api_key") is not None,
            "cwd": os.getcwd(),
            "job_directory": sys.argv[1] if len(sys.argv) > 1 else None,
            "python": sys.executable,
            "uid": os.getuid(),
            "env_has_secret": any(k.startswith("NEUROCORTEX_") for k in os.environ),
            "ca_bundle": os.environ.get("REQUESTS_CA_BUNDLE"),
            "https_proxy": os.environ.get("https_proxy"),
            "found": ["evil@bad.example", "https://malicious.example/x", "203.0.113.7"],
        }
        if self.data_type == "file":
            with open(self.get_param("file"), "rb") as handle:
                report["file_content"] = handle.read().decode(errors="replace")
            report["filename"] = self.get_param("filename")
            report["contentType"] = self.get_param("contentType")
        self.report(report)

    def summary(self, raw):
        level = self.get_param("config.level", "info")
        return {
            "taxonomies": [
                self.build_taxonomy(level, "Echo", "Type", raw["dataType"]),
                self.build_taxonomy("safe", "Echo", "Length", len(str(raw["data"]))),
            ]
        }

    def artifacts(self, raw):
        found = super().artifacts(raw)
        if self.data_type == "file":
            found.append(self.build_artifact("file", self.get_param("file"), tlp=1, tags=["copy"]))
        return found

    def operations(self, raw):
        return [self.build_operation("AddTagToArtifact", tag="echoed")]


if __name__ == "__main__":
    Echo().run()
