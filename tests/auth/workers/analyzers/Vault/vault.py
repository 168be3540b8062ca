#!/usr/bin/env python3
"""Test analyzer with a `password` item: reports a digest of it, or fails carelessly printing it."""

import hashlib
import sys

from cortexutils.analyzer import Analyzer


class Vault(Analyzer):
    def run(self):
        token = self.get_param("config.token", None, "token is missing")
        if self.get_data() == "crash":
            print(f"connecting with token {token}", file=sys.stderr)
            sys.exit(3)
        if self.get_data() == "refused":
            self.error(f"the service refused token {token}")
        self.report(
            {
                "sha256": hashlib.sha256(token.encode()).hexdigest(),
                "endpoint": self.get_param("config.endpoint"),
            }
        )

    def summary(self, raw):
        return {"taxonomies": []}


if __name__ == "__main__":
    Vault().run()
