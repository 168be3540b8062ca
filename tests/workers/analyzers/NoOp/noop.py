#!/usr/bin/env python3
from cortexutils.analyzer import Analyzer


class NoOp(Analyzer):
    def run(self):
        self.report({"ok": True})

    def summary(self, raw):
        return {"taxonomies": [self.build_taxonomy("info", "NoOp", "Result", "ok")]}

    def artifacts(self, raw):
        return []


if __name__ == "__main__":
    NoOp().run()
