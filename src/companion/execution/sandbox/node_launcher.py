"""Inside the sandbox: apply Landlock and seccomp to this process, then become the Node.js worker.

Stdlib only. Both layers survive `execve`; the seccomp program given here is the variant that still
allows `execve` (needed once, for this exec), while Landlock grants EXECUTE only on the node binary
and the dynamic loader, so nothing else can ever be executed.
"""

from __future__ import annotations

import json
import os
import sys

from . import landlock
from .child import SeccompLoader
from .filesystem import seal
from .privileges import drop_privileges
from .protocol import FD_CEILING

__all__ = ["main"]


def main() -> None:
    """argv[1] is a JSON object: node, worker, heap_mb, read_only, read_write, executable,
    seccomp_bpf, uid, gid, seal, scratch_bytes, scratch_files, devices."""
    config = json.loads(sys.argv[1])
    os.closerange(3, FD_CEILING)  # nothing a launcher leaked reaches node
    if config["seal"]:
        for path in config["read_write"]:
            seal(path, config["scratch_bytes"], config["scratch_files"], config["devices"])
    drop_privileges(config["uid"], config["gid"])
    landlock.restrict_self(config["read_only"], config["read_write"], config["executable"])
    SeccompLoader(bytes.fromhex(config["seccomp_bpf"])).load()
    node = config["node"]
    # --no-addons: no native code can be loaded from JavaScript (process.dlopen).
    argv = [node, f"--max-old-space-size={config['heap_mb']}", "--no-addons", config["worker"]]
    os.execve(node, argv, {"PATH": "/usr/bin"})  # noqa: S606 - a fixed argv, no shell
