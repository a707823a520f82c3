"""Helpers of the container and SLURM tests: the repository's files, the lint binaries, and a
small Dockerfile reader (stages, their instructions, build-argument defaults).
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
DEFINITION = DOCKER / "terrascale.def"
SLURM = DOCKER / "slurm"


def tool(name: str) -> str | None:
    """A command-line tool: the one installed next to this Python (the venv's bin/) first, then PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    return shutil.which(name)


def require_tool(name: str, package: str) -> str:
    """The tool's path, or skip the test naming the package that provides it."""
    path = tool(name)
    if path is None:
        pytest.skip(f"'{name}' is not installed (it comes with the PyPI package {package}, in terrascale's test extra)")
    return path


@dataclass
class Stage:
    """One build stage: ``FROM image AS name`` and its instructions ``(KEYWORD, arguments)``."""

    name: str
    image: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    """A Dockerfile read into global build arguments and stages."""

    global_args: dict[str, str | None]
    stages: dict[str, Stage]

    def stage(self, name: str) -> Stage:
        return self.stages[name]

    def resolve(self, text: str) -> str:
        """``text`` with ``${NAME}`` / ``$NAME`` of the global build arguments replaced by their defaults."""
        for _ in range(5):  # defaults may name other arguments
            text = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.global_args.get(m[1] or m[2]) or m[0], text)
        return text


def logical_lines(text: str) -> list[str]:
    """Instruction lines: comments dropped, backslash continuations joined."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return out


def read_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: dict[str, Stage] = {}
    stage = None
    for line in logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            stage = Stage(name=m[2] or str(len(stages)), image=m[1])
            stages[stage.name] = stage
        elif stage is None:
            if keyword == "ARG":
                name, eq, default = args.partition("=")
                global_args[name] = default if eq else None
        else:
            stage.instructions.append((keyword, args))
    return Dockerfile(global_args, stages)


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether a context-relative path is left out by .dockerignore patterns (the last match wins).

    Enough of Docker's rules for these tests: ``*`` does not cross ``/``, ``**`` does, a
    pattern also excludes everything under a directory it matches, ``!`` re-includes.
    """
    excluded = False
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                j = pattern.index("]", i)
                regex += pattern[i : j + 1]
                i = j + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        if re.fullmatch(regex + "(?:/.*)?", path):
            excluded = not negate
    return excluded


def definition_sections(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """An Apptainer definition file's header keywords and its ``%section`` bodies (raw text)."""
    header: dict[str, str] = {}
    sections: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^%(\w+)\s*$", line)
        if m:
            current = m[1]
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
        elif ":" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition(":")
            header[key.strip().lower()] = value.strip()
    return header, sections
