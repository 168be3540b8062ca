"""A test module in the simplified format: options, text and attachments, errors and slowness on demand."""

import base64
import hashlib
import json
import time

mispattributes = {"input": ["text", "attachment"], "output": ["text", "ip-dst", "sha256", "attachment"]}
moduleinfo = {
    "version": "2.1",
    "author": "neurocortex tests",
    "description": "Echoes text with a greeting, hashes attachments",
    "module-type": ["expansion"],
}
moduleconfig = ["greeting", "api_key"]


def handler(q=False):
    request = json.loads(q)
    config = request.get("config") or {}
    if "attachment" in request:
        content = base64.b64decode(request["data"])
        return {
            "results": [
                {"types": ["sha256"], "values": [hashlib.sha256(content).hexdigest()]},
                {"types": ["filename"], "values": request["attachment"]},
            ]
        }
    text = request["text"]
    if text.startswith("error:"):
        return {"error": text.removeprefix("error:")}
    if text.startswith("sleep:"):
        time.sleep(float(text.removeprefix("sleep:")))
    return {
        "results": [
            {"types": ["text"], "values": [f"{config.get('greeting', 'hello')} {text}"]},
            {
                "types": ["ip-dst"],
                "values": ["192.0.2.1", "192.0.2.2"],
                "comment": "addresses",
                "tags": ["tlp:green"],
            },
            {"type": "attachment", "value": "note.txt", "data": base64.b64encode(b"a note\n").decode()},
            {"types": ["text"], "values": [f"api_key given: {bool(config.get('api_key'))}"]},
        ]
    }


def introspection():
    return mispattributes


def version():
    moduleinfo["config"] = moduleconfig
    return moduleinfo
