"""deploy/Dockerfile installs exactly as scripts/setup.sh does, and bakes in no weights.

No Docker engine runs here, so the file is checked as text: its only install step is
scripts/setup.sh itself (same pins, same constraints.txt), the build context keeps every file
that script reads, and nothing else in the build fetches anything.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import sys
from pathlib import PurePosixPath

from deploy_files import DOCKERFILE, REPO, SETUP, project


def instructions() -> list[tuple[str, str, str]]:
    """(stage, instruction, arguments) of every Dockerfile line, continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stage = ""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction == "FROM":
            stage = arguments.split(" AS ")[-1] if " AS " in arguments else arguments
        found.append((stage, instruction, arguments.strip()))
    return found


def setup_pip_installs() -> list[list[str]]:
    """setup.sh's pip install commands, as argument lists."""
    return [
        shlex.split(line)
        for line in SETUP.read_text().splitlines()
        if " -m pip install " in line and not line.lstrip().startswith("#")
    ]


def test_each_image_installs_through_setup_sh_and_nothing_else() -> None:
    runs = [(stage, args) for stage, instruction, args in instructions() if instruction == "RUN"]
    installs = [(stage, args) for stage, args in runs if "scripts/setup.sh" in args]
    assert sorted(stage for stage, _ in installs) == ["cpu", "cuda"]
    for _, args in runs:
        assert not re.search(r"\bpip3? install\b", args), args
    assert [stage for stage, instruction, _ in instructions() if instruction == "FROM"][-1] == (
        "cuda"
    ), "docker build without --target builds the last stage"


def test_setup_sh_pins_every_install_to_constraints_txt() -> None:
    commands = setup_pip_installs()
    assert len(commands) == 3
    bootstrap, torch, install = commands
    assert "setuptools<81" in bootstrap
    for command in (torch, install):
        assert command[command.index("-c") + 1] == "constraints.txt"
    assert torch[-2:] == ["torch", "torchvision"]
    assert install[-2:] == ["-e", ".[${EXTRAS}]"]


def test_the_image_asks_for_an_extra_the_project_has() -> None:
    (extra,) = re.findall(r"CLIP_ASSETS_EXTRAS=(\w+)", DOCKERFILE.read_text())
    assert 'EXTRAS="${CLIP_ASSETS_EXTRAS:-dev}"' in SETUP.read_text()
    metadata = project()
    assert extra in metadata["optional-dependencies"]
    assert extra != "dev", "the image carries no test tools"


def test_only_the_cpu_image_takes_torch_from_the_cpu_index() -> None:
    indexes = {stage: args for stage, instruction, args in instructions() if "INDEX_URL" in args}
    assert list(indexes) == ["cpu"]
    assert "download.pytorch.org/whl/cpu" in indexes["cpu"]


def test_the_build_context_keeps_what_setup_sh_reads() -> None:
    ignore = DOCKERFILE.with_name("Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.startswith("#")]
    needed = [
        "scripts/setup.sh",
        "constraints.txt",
        "pyproject.toml",
        "README.md",
        "clip_assets/definitions.py",
        "resources/storage.py",
    ]
    for path in needed:
        assert (REPO / path).exists(), path
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        for pattern in patterns:
            assert not any(fnmatch.fnmatch(p, pattern.lstrip("/")) for p in prefixes), (
                path,
                pattern,
            )
    copies = [args for _, instruction, args in instructions() if instruction == "COPY"]
    assert copies == [". ."]


def test_no_weights_are_baked_in() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"HF_HOME=/\S+", text)
    runs = [args for _, instruction, args in instructions() if instruction == "RUN"]
    for args in runs:
        assert re.fullmatch(r"(useradd .*|.*bash scripts/setup\.sh)", args), args


def test_the_image_runs_the_python_the_suite_runs_on() -> None:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"ARG PYTHON_VERSION={python}" in DOCKERFILE.read_text()
