"""Files that are never left half-written."""

import contextlib
import json
import math
import numbers
import os
import secrets


def nearest_existing(path: str) -> str:
    """``path`` made absolute, or its nearest ancestor that exists: where creating it would start
    (a file there means it cannot be made)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


@contextlib.contextmanager
def atomic_path(path: str):
    """The temporary path to write ``path``'s new content to, renamed over ``path`` when the block
    ends: a reader (or a crash) sees the old file or the new one, never a truncated one; a block
    that fails leaves no temporary file behind. The temporary name is one of its own per call
    (``.NAME.<random>.tmp`` beside ``path``, not yet created): writers of the same path at the same
    time, in threads or processes, never share it, and the last to finish wins."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # a random name rather than mkstemp's file: the writer creates it, with the usual permissions
    tmp = os.path.join(folder, f".{name[:200]}.{secrets.token_hex(8)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str, text: str):
    """Write ``text`` to ``path`` through ``atomic_path``."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def write_json_atomic(path: str, data, indent=None):
    """``data`` as JSON, written like ``write_text_atomic``."""
    write_text_atomic(path, json.dumps(data, indent=indent))


def nan_as_null(data):
    """``data`` with every NaN or infinite float as None: figures with nothing to measure (no face
    found in a band, COCO's AP without a box) as standard JSON's null, which strict parsers read
    (Python writes NaN, which they refuse)."""
    if isinstance(data, numbers.Real) and not isinstance(data, numbers.Integral):  # numpy's floats too
        return float(data) if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: nan_as_null(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [nan_as_null(v) for v in data]
    return data


def write_report(out_dir: str, stem: str, report, lines):
    """A benchmark's results: ``report`` as OUT/STEM.json, its table ``lines`` as OUT/STEM.md
    (both written like ``write_text_atomic``) and on stdout."""
    write_json_atomic(os.path.join(out_dir, stem + ".json"), report, indent=1)
    text = "\n".join(lines) + "\n"
    write_text_atomic(os.path.join(out_dir, stem + ".md"), text)
    print(text, end="")
