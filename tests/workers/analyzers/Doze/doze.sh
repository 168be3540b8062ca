#!/bin/sh
sleep 2
printf '{"success": true, "summary": {}, "full": {"dozed": 2}, "artifacts": [], "operations": []}' \
  > "$1/output/output.json"
