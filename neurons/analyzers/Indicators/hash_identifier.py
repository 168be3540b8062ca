#!/usr/bin/env python3
"""HashIdentifier: which algorithm(s) could have produced this hash, judging by its shape."""

from cortexutils.analyzer import Analyzer
from hashes import identify

NAMESPACE = "HashIdentifier"


class HashIdentifier(Analyzer):
    def run(self):
        value = self.get_data()
        if not isinstance(value, str) or not value.strip():
            self.error("The observable is empty: there is no hash to identify.")
        found = identify(value)
        candidates = found["candidates"]
        self.report(
            {
                "value": value,
                "normalized": found["normalized"],
                "length": len(found["normalized"]),
                "encoding": found["encoding"],
                "identified": bool(candidates),
                "mostLikely": candidates[0]["id"] if candidates else None,
                "candidates": candidates,
                "knownValue": found["known"],
            }
        )

    def summary(self, raw):
        taxonomies = [self.build_taxonomy("info", NAMESPACE, "Algorithm", raw["mostLikely"] or "unknown")]
        if len(raw["candidates"]) > 1:
            taxonomies.append(self.build_taxonomy("info", NAMESPACE, "Candidates", len(raw["candidates"])))
        if raw["knownValue"]:
            # Hashes of empty input are a classic false-positive IOC: nothing malicious hashes to them.
            taxonomies.append(self.build_taxonomy("safe", NAMESPACE, "KnownHash", raw["knownValue"]))
        return {"taxonomies": taxonomies}

    def artifacts(self, raw):
        # Nothing new to extract from a hash; cortexutils' default extractor would only echo it back.
        return []


if __name__ == "__main__":
    HashIdentifier().run()
