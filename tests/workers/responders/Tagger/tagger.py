#!/usr/bin/env python3
from cortexutils.responder import Responder


class Tagger(Responder):
    def run(self):
        self.report({"message": "tagged", "received": self.get_data(), "dataType": self.data_type})

    def operations(self, raw):
        tag = self.get_param("config.tag")
        return [
            self.build_operation("AddTagToCase", tag=tag),
            self.build_operation("AddCustomFields", name="f", tpe="string", value="v"),
        ]


if __name__ == "__main__":
    Tagger().run()
