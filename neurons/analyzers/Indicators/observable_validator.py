#!/usr/bin/env python3
"""ObservableValidator: is the observable well-formed for its data type, what is it, and its canonical form."""

from cortexutils.analyzer import Analyzer
from network import host_data_type
from observables import validate

NAMESPACE = "Validator"


class ObservableValidator(Analyzer):
    def run(self):
        value = self.get_data()
        if not isinstance(value, str):
            value = str(value)
        data_type, verdict = validate(self.data_type, value)
        report = {"dataType": self.data_type, "value": value, "detectedType": data_type}
        report.update(verdict.as_dict())
        self.report(report)

    def summary(self, raw):
        taxonomies = [
            self.build_taxonomy(
                "info" if raw["valid"] else "suspicious",
                NAMESPACE,
                "Format",
                "valid" if raw["valid"] else "invalid",
            ),
            self.build_taxonomy("info", NAMESPACE, "Type", raw["kind"]),
        ]
        if raw["normalized"] is not None and raw["normalized"] != raw["value"]:
            taxonomies.append(self.build_taxonomy("info", NAMESPACE, "Normalized", raw["normalized"]))
        for note in raw["notes"]:
            taxonomies.append(self.build_taxonomy(note["level"], NAMESPACE, note["predicate"], note["value"]))
        return {"taxonomies": taxonomies}

    def artifacts(self, raw):
        if not self.auto_extract:
            return []
        found = []
        data_type, normalized = raw["detectedType"], raw["normalized"]
        if data_type and normalized and (data_type, normalized) != (self.data_type, raw["value"]):
            found.append((data_type, normalized, "canonical form of the observable"))
        details = raw["details"]
        if data_type == "url" and details.get("host"):
            found.append((host_data_type(details["host"]), details["host"], "host of the URL"))
            found.extend(
                ("url", url, "URL embedded in the query string") for url in details.get("embedded_urls", [])
            )
        if data_type in ("mail", "email") and details.get("domain") and not details["domain"].startswith("["):
            found.append(
                (host_data_type(details["domain"]), details["domain"], "domain of the e-mail address")
            )

        artifacts, seen = [], {(self.data_type, raw["value"])}
        for artifact_type, data, message in found:
            if (artifact_type, data) not in seen:
                seen.add((artifact_type, data))
                artifacts.append(self.build_artifact(artifact_type, data, message=message))
        return artifacts


if __name__ == "__main__":
    ObservableValidator().run()
