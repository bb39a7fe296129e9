"""JSON files that are never left half-written."""
import json
import os


def write_json_atomic(path: str, data, indent=None):
    """Write ``data`` to ``path`` through a temporary file and a rename: a reader (or a crash)
    sees the old file or the new one, never a truncated one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=indent)
    os.replace(tmp, path)
