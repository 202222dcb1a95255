#!/usr/bin/env python3
"""replica-config.py SRC OUT N — the gateway file of fleet replica N (`make run-fleet`).

Reads SRC/gateway.json (the demo's gateway file) and writes OUT/config/gateway.json: the same
gateway with its listener ports moved up by N - 1, every path made absolute (the file moves),
the replica's own agent socket (OUT/agent.sock) and `plugin.replay.scope` "fleet". The API
definitions are shared (OUT/config/apis links to SRC/apis).
"""

import json
import os
import sys


def main() -> None:
    src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(os.path.join(src, "gateway.json")) as f:
        g = json.load(f)

    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(src, path))

    for listener in g["listeners"].values():
        if "port" in listener:
            listener["port"] += n - 1
        for key in ("cert_file", "key_file"):
            if key in listener:
                listener[key] = absolute(listener[key])
    plugin = g["plugin"]
    plugin["wasm_file"] = absolute(plugin["wasm_file"])
    plugin["keys_dir"] = absolute(plugin["keys_dir"])
    plugin["epoch_files"] = [absolute(f) for f in plugin["epoch_files"]]
    plugin["replay"] = {"scope": "fleet"}
    g["directory"]["address"] = "unix:" + os.path.join(out, "agent.sock")
    with open(os.path.join(out, "config", "gateway.json"), "w") as f:
        json.dump(g, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
