#!/usr/bin/env python3
"""Test analyzer that misbehaves in the way `config.service` names."""

import json
import os
import subprocess
import sys
import time

from cortexutils.analyzer import Analyzer


class Hostile(Analyzer):
    def run(self):
        service = self.get_param("config.service")
        output = os.path.join(self.job_directory, "output")
        if service == "crash":
            raise RuntimeError("boom: the analyzer crashed")
        if service == "hang":
            print("about to hang", flush=True)
            time.sleep(3600)
        if service == "grandchild":
            # a grandchild that would keep the pipe open for an hour
            grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
            pidfile = self.get_param("parameters.pidfile")
            if pidfile:  # lets a test check that the grandchild was killed with the worker
                with open(pidfile, "w") as handle:
                    handle.write(str(grandchild.pid))
            time.sleep(3600)
        if service == "invalidjson":
            with open(os.path.join(output, "output.json"), "w") as handle:
                handle.write('{"success": true, "full": {"unterminated": ')
            return
        if service == "flood":
            chunk = "A" * 1024 * 1024
            for _ in range(100):
                sys.stdout.write(chunk)
            sys.stdout.write("\nthe end of the flood\n")
            sys.stdout.flush()
            return  # and no output.json
        if service == "traversal":
            with open(os.path.join(self.job_directory, "inside.txt"), "w") as handle:
                handle.write("secret inside job dir")
            os.symlink("/etc/passwd", os.path.join(output, "link"))
            os.mkdir(os.path.join(output, "adir"))
            artifacts = [
                {"dataType": "file", "file": "../../x", "filename": "x"},
                {"dataType": "file", "file": "../inside.txt", "filename": "inside.txt"},
                {"dataType": "file", "file": "/etc/passwd", "filename": "passwd"},
                {"dataType": "file", "file": "link", "filename": "passwd"},
                {"dataType": "file", "file": "adir", "filename": "adir"},
                {"dataType": "file", "file": "missing", "filename": "missing"},
                {"dataType": "ip", "data": "198.51.100.1"},
            ]
            self._write({"success": True, "full": {"ok": True}, "summary": {}, "artifacts": artifacts})
            return
        if service == "notobject":
            self._write({"success": True, "full": ["a", "list"], "summary": {}})
            return
        if service == "unknownkeys":
            artifacts = [
                {"dataType": "ip", "data": "198.51.100.2", "ioc": True, "sighted": 1, "tags": ["t"]},
                {"data": "no data type"},
                {"dataType": "domain", "data": "x.example", "tlp": 9},
            ]
            self._write(
                {
                    "success": True,
                    "full": {"ok": 1},
                    "summary": {"taxonomies": []},
                    "artifacts": artifacts,
                    "operations": "not a list",
                }
            )
            return
        self.error(f"unknown service {service}")

    def _write(self, document):
        with open(os.path.join(self.job_directory, "output", "output.json"), "w") as handle:
            json.dump(document, handle)


if __name__ == "__main__":
    Hostile().run()
