"""A test module in the MISP standard format taking malware samples (a ZIP protected by `infected`)."""

import base64
import hashlib
import io
import json
import zipfile

mispattributes = {"input": ["malware-sample"], "output": ["sha256"], "format": "misp_standard"}
moduleinfo = {
    "version": "1",
    "author": "neurocortex tests",
    "description": "Hashes a malware sample and sends it back",
    "module-type": ["expansion"],
}


def handler(q=False):
    request = json.loads(q)
    attribute = request["attribute"]
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(attribute["data"]))) as archive:
        content = archive.read(archive.namelist()[0], pwd=b"infected")
    name = attribute["value"].split("|")[0]
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:  # a plain ZIP: what MISP's own samples are not
        archive.writestr(name, content)
    return {
        "results": {
            "Attribute": [{"type": "sha256", "value": hashlib.sha256(content).hexdigest(), "to_ids": False}],
            "Object": [
                {
                    "name": "file",
                    "Attribute": [
                        {"object_relation": "filename", "type": "filename", "value": name},
                        {"object_relation": "md5", "type": "md5", "value": hashlib.md5(content).hexdigest()},
                        {
                            "object_relation": "malware-sample",
                            "type": "malware-sample",
                            "value": f"{name}|{hashlib.md5(content).hexdigest()}",
                            "data": base64.b64encode(packed.getvalue()).decode(),
                        },
                    ],
                }
            ],
        }
    }


def introspection():
    return mispattributes


def version():
    moduleinfo["config"] = []
    return moduleinfo
