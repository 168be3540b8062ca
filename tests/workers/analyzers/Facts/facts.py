#!/usr/bin/env python3
"""Test analyzer: reports what the engine gives it for the network — proxy and CA variables as they are
before cortexutils touches them, the CA file — and where and as whom it runs, and its memory limit."""

import os
import sys

NETWORK_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "REQUESTS_CA_BUNDLE",
                     "SSL_CERT_FILE")  # fmt: skip
# before cortexutils, which exports config.proxy itself
BEFORE = {name: os.environ.get(name) for name in NETWORK_VARIABLES}

from cortexutils.analyzer import Analyzer  # noqa: E402


def memory_limit():
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                return handle.read().strip()
        except OSError:
            continue
    return None


class Facts(Analyzer):
    def run(self):
        bundle = BEFORE["SSL_CERT_FILE"]
        ca = None
        if bundle:
            with open(bundle) as handle:
                ca = handle.read()
        self.report(
            {
                "environment": BEFORE,
                "proxy": self.get_param("config.proxy"),
                "proxy_http": self.get_param("config.proxy_http"),
                "proxy_https": self.get_param("config.proxy_https"),
                "ca": ca,
                "job_directory": self.job_directory,
                "argv": sys.argv[1:],
                "uid": os.getuid(),
                "memory_limit": memory_limit(),
                # Podman marks its containers so (the host itself may have a /.dockerenv)
                "in_container": os.path.exists("/run/.containerenv"),
            }
        )

    def artifacts(self, raw):
        return []


if __name__ == "__main__":
    Facts().run()
