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


def write_report(out_dir: str, stem: str, report, lines):
    """A benchmark's results: ``report`` as OUT/STEM.json, its table ``lines`` as OUT/STEM.md
    (both written like ``write_text_atomic``) and on stdout."""
    write_json_atomic(os.path.join(out_dir, stem + ".json"), report, indent=1)
    text = "\n".join(lines) + "\n"
    write_text_atomic(os.path.join(out_dir, stem + ".md"), text)
    print(text, end="")
