"""The user docs point at what is there: every relative link and every repository path they name
exists, their commands use the tools' command-line convention, and docs/ holds only the pictures
the docs show (no generated files)."""

import glob
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOCS = ["README.md", "datasets/README.md", "demo/README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))
)
LINK = re.compile(r"\]\(([^)\s]+)\)")
# a path, not one inside a longer path or a git revision (``git show REV:path``)
PATH = re.compile(
    r"(?<![\w./:-])((?:configs|tools|foss_d2|docs|demo|datasets|tests)/[\w./*-]+\.(?:yaml|py|sh|md|jpg|png|pth))"
)


def read(doc):
    with open(os.path.join(ROOT, doc)) as f:
        return f.read()


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_resolve(doc):
    missing = []
    for target in LINK.findall(read(doc)):
        if "://" in target or target.startswith("#"):
            continue
        path = os.path.normpath(os.path.join(ROOT, os.path.dirname(doc), target.split("#")[0]))
        if not glob.glob(path):
            missing.append(target)
    assert not missing, missing


@pytest.mark.parametrize("doc", DOCS)
def test_named_repository_paths_exist(doc):
    missing = sorted({p for p in PATH.findall(read(doc)) if not glob.glob(os.path.join(ROOT, p))})
    assert not missing, missing


@pytest.mark.parametrize("doc", DOCS)
def test_commands_use_the_tools_convention(doc):
    """detectron2's: --config-file, --input, --output and trailing KEY VALUE overrides (no --opts,
    --inputs or --root)."""
    commands = [line for line in read(doc).splitlines() if "tools/" in line or line.startswith("    ")]
    stale = [c for c in commands if re.search(r"(^|\s)--(opts|inputs|root)(\s|$)", c)]
    assert not stale, stale


def test_docs_folder_holds_only_the_pictures_the_docs_show():
    files = {
        os.path.relpath(p, ROOT)
        for p in glob.glob(os.path.join(ROOT, "docs", "**", "*"), recursive=True)
        if os.path.isfile(p)
    }
    pictures = {f for f in files if f.startswith("docs/images/")}
    assert files - pictures == {os.path.join("docs", os.path.basename(d)) for d in DOCS if d.startswith("docs/")}
    shown = set()
    for doc in DOCS:
        for target in LINK.findall(read(doc)):
            shown.add(os.path.normpath(os.path.join(os.path.dirname(doc), target)))
    assert pictures <= shown, sorted(pictures - shown)


def documented_commands():
    """(doc, argv) of every ``python tools/<tool>.py ...`` line in the docs' code blocks, continuation
    lines joined and comments dropped."""
    import shlex

    found = []
    for doc in DOCS:
        for block in re.findall(r"```[a-z]*\n(.*?)```", read(doc), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                head = line.split()[:2]
                if len(head) == 2 and head[0].endswith("python") and head[1].startswith("tools/"):
                    found.append((doc, shlex.split(line, comments=True)[1:]))
    return found


def _app_module(tool):
    """The foss_d2.apps module whose main() the tool script runs, or None."""
    import importlib

    with open(os.path.join(ROOT, tool)) as f:
        text = f.read()
    m = re.search(r"^\s*from (foss_d2\.apps\.\w+) import main$", text, flags=re.M) or re.search(
        r'run_tool\("(foss_d2\.apps\.\w+)"', text
    )
    return importlib.import_module(m.group(1)) if m else None


def test_documented_tool_commands_parse_and_their_overrides_are_config_keys():
    """Each command of a tools/ script that runs a foss_d2.apps command goes through that command's
    argument parser, and its trailing KEY VALUE overrides merge onto its config."""
    from foss_d2 import add_foss_config
    from foss_d2.apps.cli import parse_foss_args
    from foss_d2.model_zoo import DEFAULT_CONFIG

    from detectron2.config import get_cfg

    commands = documented_commands()
    assert len(commands) > 20
    checked = 0
    for doc, (tool, *argv) in commands:
        assert os.path.isfile(os.path.join(ROOT, tool)), (doc, tool)
        module = _app_module(tool) if tool.endswith(".py") else None
        if module is None:
            continue
        try:
            args = parse_foss_args(module.get_parser(), argv)
        except SystemExit:
            pytest.fail(f"{doc}: {tool} {' '.join(argv)} does not parse")
        cfg = get_cfg()
        add_foss_config(cfg)
        config_file = getattr(args, "config_file", None) or DEFAULT_CONFIG
        cfg.merge_from_file(os.path.join(ROOT, config_file) if not os.path.isabs(config_file) else config_file)
        cfg.merge_from_list(list(getattr(args, "opts", None) or []))  # an unknown key raises
        checked += 1
    assert checked > 15
