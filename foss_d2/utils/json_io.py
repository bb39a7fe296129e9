"""Files that are never left half-written."""

import json
import os


def write_text_atomic(path: str, text: str):
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader (or a crash)
    sees the old file or the new one, never a truncated one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json_atomic(path: str, data, indent=None):
    """``data`` as JSON, written like ``write_text_atomic``."""
    write_text_atomic(path, json.dumps(data, indent=indent))
