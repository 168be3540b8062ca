#!/bin/sh
sleep 0.1
printf '{"success": true, "summary": {}, "full": {"napped": 0.1}, "artifacts": [], "operations": []}' \
  > "$1/output/output.json"
