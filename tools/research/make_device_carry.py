#!/usr/bin/env python
"""What a lent GPU machine lacks to run FOSS-D2, packed into one archive to carry there
(docs/MODEL_ZOO.md, "On the next lent GPU").

The machines' image has Python 3.12, PyTorch, torchvision, numpy, OpenCV, Pillow >= 10, matplotlib,
scipy, tqdm, tabulate, portalocker, cloudpickle and PyYAML, and no detectron2, fvcore, iopath,
yacs, omegaconf (with its antlr4), termcolor or pycocotools; nothing can be fetched there. This
writes OUT/site.tar.gz with:

* detectron2 0.6's Python package as install.sh built it here, its compiled ``_C`` replaced by a
  Python module with the three functions ``detectron2.utils.collect_env`` reads (FOSS-D2 uses none
  of detectron2's kernels: docs/INSTALL.md; foss_d2 gives Pillow 10 back the name detectron2 reads);
* the pure-Python packages above, and timm (the version FOSS-D2's models are written against,
  whatever the machine has), copied from this environment;
* pycocotools for the machine's Python: this environment's own where the versions match, else
  its wheel for ``--python-version`` from PyPI (``pip download``, here), unpacked.

On the machine, tools/research/device_window.sh unpacks it and puts it and the checkout on
PYTHONPATH. ``--travel`` adds up what the window's call would send (the checkout's files that git
does not ignore, OUT and the paths named) against the device tool's 64 MiB, and fails over it.

    python tools/research/make_device_carry.py --output output/device --python-version 3.12 \
        --travel output/compact.tar.xz
"""

import argparse
import glob
import importlib.metadata
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from foss_d2.utils.json_io import atomic_path

PURE = ("detectron2", "fvcore", "iopath", "yacs", "omegaconf", "antlr4", "termcolor", "timm")
COMPILED = ("pycocotools",)
STAND_IN_C = '''"""A Python stand-in for detectron2's compiled ``_C`` (tools/research/make_device_carry.py): the
functions ``detectron2.utils.collect_env`` reads. FOSS-D2 uses none of detectron2's C++/CUDA kernels."""


def get_compiler_version():
    return "none (Python stand-in)"


def get_cuda_version():
    return "none (Python stand-in)"


def has_cuda():
    return False
'''
TRAVEL_LIMIT = 64 * 2**20  # the device tool: the working tree, shared/ and the carried paths
# pip matches a manylinux tag exactly: the ones pycocotools' wheels carry
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"make_device_carry.py: {name} is not installed here (run install.sh first)")
    return list(spec.submodule_search_locations)[0]


def add_package(tar: tarfile.TarFile, name: str, keep_compiled: bool = False) -> int:
    """``name``'s files under ``name/`` in ``tar``, without bytecode (and without compiled
    modules unless ``keep_compiled``); the bytes added."""
    root = package_dir(name)
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            path = os.path.join(folder, f)
            if f.endswith((".pyc", ".pyo")):
                continue
            if f.endswith((".so", ".pyd")) and not keep_compiled:
                if name == "detectron2" and f.startswith("_C"):
                    continue  # replaced by the stand-in
                raise SystemExit(f"make_device_carry.py: {path} is compiled: carry {name}'s wheel instead")
            tar.add(path, arcname=os.path.join(name, os.path.relpath(path, root)), recursive=False)
            total += os.path.getsize(path)
    return total


def add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def add_wheel(tar: tarfile.TarFile, name: str, python_version: str, scratch: str) -> str:
    """``name``'s wheel for ``python_version`` (CPython, manylinux x86_64) at this environment's
    version, fetched by pip and unpacked into ``tar``; the wheel's file name."""
    version = importlib.metadata.version(name)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--implementation", "cp"]
    cmd += ["--python-version", python_version, "-d", scratch, "-q", f"{name}=={version}"]
    for tag in PLATFORMS:
        cmd += ["--platform", tag]
    r = subprocess.run(cmd, capture_output=True, text=True)
    wheels = glob.glob(os.path.join(scratch, f"{name}-{version}-*.whl"))
    if r.returncode != 0 or not wheels:
        why = r.stderr.strip()[-500:]
        raise SystemExit(f"make_device_carry.py: no {name}=={version} wheel for Python {python_version}: {why}")
    with zipfile.ZipFile(wheels[0]) as z:
        for member in z.namelist():
            if member.startswith(f"{name}/") and not member.endswith("/"):
                add_bytes(tar, member, z.read(member), 0o755 if member.endswith(".so") else 0o644)
    return os.path.basename(wheels[0])


def tree_bytes(paths) -> int:
    """The bytes of the checkout's files that git does not ignore (what every device call sends)
    and of ``paths`` (files or folders, what its ``carry`` names)."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    listed = subprocess.run(
        ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    files = [os.path.join(root, f) for f in listed.decode().split("\0") if f]
    files = [os.path.abspath(f) for f in files if os.path.isfile(f)]
    for path in paths:
        if os.path.isdir(path):
            files += [os.path.abspath(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs]
        elif os.path.isfile(path):
            files.append(os.path.abspath(path))
        else:
            raise SystemExit(f"make_device_carry.py: --travel {path}: no such file or folder")
    return sum(os.path.getsize(f) for f in set(files))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, help="the folder to write site.tar.gz into")
    p.add_argument(
        "--python-version", default="3.12", help="the machine's Python, MAJOR.MINOR (default 3.12, the lent machines')"
    )
    p.add_argument(
        "--travel", nargs="*", metavar="PATH", help="the window's other carried paths: add up what its call sends"
    )
    args = p.parse_args(argv)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "site.tar.gz")
    with atomic_path(path) as tmp, tarfile.open(tmp, "w:gz") as tar, tempfile.TemporaryDirectory() as scratch:
        for name in PURE:
            print(f"{name}: {add_package(tar, name) / 1e6:.1f} MB")
        add_bytes(tar, "detectron2/_C.py", STAND_IN_C.encode())
        for name in COMPILED:
            if args.python_version == here:
                print(f"{name}: this environment's (Python {here}), {add_package(tar, name, True) / 1e6:.1f} MB")
            else:
                print(f"{name}: {add_wheel(tar, name, args.python_version, scratch)}")
    print(f"{path}: {os.path.getsize(path) / 2**20:.1f} MiB, for Python {args.python_version}")
    if args.travel is not None:
        total = tree_bytes([args.output] + args.travel)
        verdict = "fits" if total <= TRAVEL_LIMIT else "is over"
        sent = ", ".join(args.travel + [args.output])
        print(f"the window's call sends {total / 2**20:.1f} MiB (this checkout and {sent}),")
        print(f"  which {verdict} the device tool's {TRAVEL_LIMIT / 2**20:.0f} MiB")
        if total > TRAVEL_LIMIT:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
