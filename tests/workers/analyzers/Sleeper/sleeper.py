#!/usr/bin/env python3
import time

from cortexutils.analyzer import Analyzer


class Sleeper(Analyzer):
    def run(self):
        seconds = float(self.get_param("parameters.seconds", 2))
        time.sleep(seconds)
        self.report({"slept": seconds})

    def artifacts(self, raw):
        return []


if __name__ == "__main__":
    Sleeper().run()
