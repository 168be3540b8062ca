#!/bin/sh
level=safe
if grep -Eq '"data": ?"[^"]*bad' "$1/input/input.json"; then level=malicious; fi
printf '{"success": true, "full": {"level": "%s"}, "summary": {"taxonomies": [{"level": "%s", "namespace": "Judge", "predicate": "Verdict", "value": "%s"}]}, "artifacts": [], "operations": []}' \
  "$level" "$level" "$level" > "$1/output/output.json"
