#!/usr/bin/env python
"""Write a compact copy of the training data (UTKFace train split, WIDER FACE train; with
``--wider-more`` and ``--fgnet-train`` also ``widerface_more`` and the FG-NET train people) in the
same official layouts, for moving to a machine with little room for transfer (the GPU steps of the
shipped model, docs/MODEL_ZOO.md, read such copies).

    python tools/research/make_compact_data.py --input ../shared/data --output /tmp/compact \
        --utk-side 128 --wider-max-side 640

UTKFace faces are resized to ``--utk-side`` pixels square (their file names, which hold the labels,
are kept), so the held-out split (a hash of the name) stays out. WIDER FACE photos are shrunk so
that their longer side is at most ``--wider-max-side``, and ``wider_face_train_bbx_gt.txt`` is
rewritten with the boxes scaled alike (rounded to whole pixels, as the format stores them).
The FOSS detector sees every image at DET_INPUT_SIZE (480 at most in the shipped configs), so
640 px photos lose it little; the age network's crops come from the full-resolution image, which
for UTKFace is now ``--utk-side``. FG-NET portraits are shrunk to ``--fgnet-side`` on their longer
side with their landmarks (the face box is derived from them). The total size is printed at the end.
"""

import argparse
import os
import shutil
import sys

import cv2
from tqdm import tqdm

from foss_d2.data.datasets.fgnet import load_fgnet, read_pts
from foss_d2.data.datasets.utkface import load_utkface
from foss_d2.data.datasets.wider_face import parse_wider_bbx_gt

WIDER_GT = os.path.join("wider_face_split", "wider_face_train_bbx_gt.txt")
WIDER_IMAGES = os.path.join("WIDER_train", "images")
UTK_DIR = os.path.join("utkface", "UTKFace")
FGNET_DIR = os.path.join("fgnet", "FGNET")


def write_jpeg(path: str, image, quality: int):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"could not write {path}")


def read_or_warn(path: str):
    """The picture, or None after a warning: one unreadable file does not end the copy."""
    img = cv2.imread(path)
    if img is None:
        print(f"warning: skipping unreadable {path}", file=sys.stderr)
    return img


def shrink(img, max_side: int):
    """The picture shrunk to at most ``max_side`` on its longer side, and the scale applied."""
    s = min(1.0, max_side / max(img.shape[:2]))
    if s < 1.0:
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return img, s


def compact_utkface(src: str, dst: str, side: int, quality: int) -> int:
    written = 0
    for rec in tqdm(load_utkface(src, "train"), desc="UTKFace train"):
        img = read_or_warn(rec["file_name"])
        if img is None:
            continue
        write_jpeg(
            os.path.join(dst, rec["image_id"]), cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA), quality
        )
        written += 1
    return written


def scale_wider_entries(entries, scales):
    """WIDER FACE gt entries (``parse_wider_bbx_gt``) with each image's boxes multiplied by
    ``scales[path]`` and rounded to whole pixels; attributes are kept."""
    out = []
    for path, rows in entries:
        s = scales.get(path, 1.0)
        out.append((path, [[int(round(v * s)) for v in r[:4]] + list(r[4:]) for r in rows]))
    return out


def format_wider_bbx_gt(entries) -> str:
    """The inverse of ``parse_wider_bbx_gt`` (an image without faces gets the format's dummy row)."""
    lines = []
    for path, rows in entries:
        lines += [path, str(len(rows))]
        lines += [" ".join(map(str, r)) for r in rows] or ["0 0 0 0 0 0 0 0 0 0"]
    return "\n".join(lines) + "\n"


def compact_wider(src_root: str, dst_root: str, max_side: int, quality: int, folder: str = "widerface") -> int:
    """The WIDER FACE train photos under ``folder`` (``widerface`` or ``widerface_more``)."""
    src_root, dst_root = os.path.join(src_root, folder), os.path.join(dst_root, folder)
    entries = parse_wider_bbx_gt(os.path.join(src_root, WIDER_GT))
    kept, scales = [], {}
    for rel, rows in tqdm(entries, desc=f"{folder} train"):
        img = read_or_warn(os.path.join(src_root, WIDER_IMAGES, rel))
        if img is None:
            continue
        img, scales[rel] = shrink(img, max_side)
        kept.append((rel, rows))
        write_jpeg(os.path.join(dst_root, WIDER_IMAGES, rel), img, quality)
    out = os.path.join(dst_root, WIDER_GT)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(format_wider_bbx_gt(scale_wider_entries(kept, scales)))
    return len(kept)


def write_pts(path: str, points) -> None:
    """The inverse of fgnet.read_pts (the FG-NET / iBUG .pts format)."""
    rows = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    with open(path, "w") as f:
        f.write(f"version: 1\nn_points: {len(points)}\n{{\n{rows}\n}}\n")


def compact_fgnet(src_root: str, dst_root: str, side: int, quality: int) -> int:
    """The FG-NET train people (person-disjoint from fgnet_test), photos and landmarks scaled alike."""
    src, dst = os.path.join(src_root, FGNET_DIR), os.path.join(dst_root, FGNET_DIR)
    os.makedirs(os.path.join(dst, "points"), exist_ok=True)
    written = 0
    for rec in tqdm(load_fgnet(src, "train"), desc="FG-NET train"):
        img = read_or_warn(rec["file_name"])
        if img is None:
            continue
        img, s = shrink(img, side)
        stem = os.path.splitext(rec["image_id"])[0]
        write_jpeg(os.path.join(dst, "images", rec["image_id"]), img, quality)
        write_pts(
            os.path.join(dst, "points", stem.lower() + ".pts"),
            read_pts(os.path.join(src, "points", stem.lower() + ".pts")) * s,
        )
        written += 1
    return written


def folder_mib(root: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs) / 2**20


EVAL_SETS = ("wider_face_val", "fgnet_test")


def copy_eval_sets(src_root: str, dst_root: str, sets=EVAL_SETS) -> str:
    """WIDER FACE val (photos, boxes, demographics) and / or the FG-NET test people, byte for byte:
    the figures a GPU run prints on them are the ones this machine would get (UTKFace's held-out
    faces stay behind: at full size they would not fit the transfer beside the training copy)."""
    done = []
    if "wider_face_val" in sets:
        val = os.path.join("widerface", "WIDER_val")
        split = os.path.join("widerface", "wider_face_split")
        shutil.copytree(os.path.join(src_root, val), os.path.join(dst_root, val), dirs_exist_ok=True)
        os.makedirs(os.path.join(dst_root, split), exist_ok=True)
        for name in ("wider_face_val_bbx_gt.txt", "demographics_val.csv"):
            shutil.copy2(os.path.join(src_root, split, name), os.path.join(dst_root, split, name))
        done.append("WIDER FACE val")
    if "fgnet_test" in sets:
        people = load_fgnet(os.path.join(src_root, FGNET_DIR), "test")
        for rec in people:
            name = os.path.basename(rec["file_name"])
            pts = os.path.splitext(name)[0].lower() + ".pts"
            for sub, f in (("images", name), ("points", pts)):
                os.makedirs(os.path.join(dst_root, FGNET_DIR, sub), exist_ok=True)
                shutil.copy2(os.path.join(src_root, FGNET_DIR, sub, f), os.path.join(dst_root, FGNET_DIR, sub, f))
        done.append(f"{len(people)} FG-NET test photos")
    return " and ".join(done)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="datasets root (holds utkface/ and widerface/)")
    p.add_argument("--output", required=True, help="where to write the compact copy")
    p.add_argument("--utk-side", type=int, default=128)
    p.add_argument("--wider-max-side", type=int, default=640)
    p.add_argument("--quality", type=int, default=85, help="JPEG quality")
    p.add_argument(
        "--with-eval",
        nargs="*",
        choices=EVAL_SETS,
        default=None,
        metavar="SET",
        help=f"also these held-out sets, unchanged (alone: {' and '.join(EVAL_SETS)})",
    )
    p.add_argument("--wider-more", action="store_true", help="also widerface_more (wider_face_train_more)")
    p.add_argument("--wider-more-max-side", type=int, default=None, help="default: --wider-max-side")
    p.add_argument("--fgnet-train", action="store_true", help="also the FG-NET train people (fgnet_train)")
    p.add_argument("--fgnet-side", type=int, default=256)
    a = p.parse_args(argv)
    n_utk = compact_utkface(os.path.join(a.input, UTK_DIR), os.path.join(a.output, UTK_DIR), a.utk_side, a.quality)
    n_wider = compact_wider(a.input, a.output, a.wider_max_side, a.quality)
    print(f"wrote {n_utk} UTKFace train faces and {n_wider} WIDER FACE train photos under {a.output}")
    if a.wider_more:
        n_more = compact_wider(
            a.input, a.output, a.wider_more_max_side or a.wider_max_side, a.quality, folder="widerface_more"
        )
        print(f"wrote {n_more} widerface_more photos")
    if a.fgnet_train:
        print(f"wrote {compact_fgnet(a.input, a.output, a.fgnet_side, a.quality)} FG-NET train portraits")
    if a.with_eval is not None:
        print(f"copied {copy_eval_sets(a.input, a.output, a.with_eval or EVAL_SETS)} under {a.output}")
    print(f"{a.output}: {folder_mib(a.output):.1f} MiB in all")


if __name__ == "__main__":
    main()
