"""From what a person typed (files, folders, globs) to the files to ingest and the scopes in which a
file that has disappeared means "remove it from the knowledge base"."""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from .readers import file_type, unsupported_message


@dataclass(frozen=True)
class Candidate:
    path: Path  # absolute
    source: str  # how citations name it: the added folder's name, then the path inside it


@dataclass
class Scan:
    files: list[Candidate] = field(default_factory=list)
    unsupported: list[Candidate] = field(default_factory=list)  # found in folders, of types we cannot read
    missing: list[str] = field(default_factory=list)  # inputs that match nothing on disk, as given
    missing_roots: list[str] = field(default_factory=list)  # the same, absolute
    roots: list[str] = field(default_factory=list)  # absolute inputs, kept for `rebuild`
    folders: list[Path] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    named_files: list[Path] = field(default_factory=list)
    explicit_unsupported: list[tuple[Candidate, str]] = field(default_factory=list)

    def covers(self, path: str) -> bool:
        """Is a document at this path inside what was scanned (so its absence means it was deleted)?"""
        candidate = Path(path)
        return (candidate in self.named_files
                or any(candidate.is_relative_to(folder) for folder in self.folders)
                or any(fnmatch.fnmatch(path, pattern) for pattern in self.patterns))


def _has_magic(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _source(base: Path, path: Path) -> str:
    relative = path.relative_to(base).as_posix()
    return f"{base.name}/{relative}" if base.name else relative


def scan(inputs: list[str | os.PathLike]) -> Scan:
    result = Scan()
    seen: set[Path] = set()

    def consider(path: Path, base: Path, explicit: bool = False) -> None:
        if path in seen:
            return
        seen.add(path)
        candidate = Candidate(path, _source(base, path) if base != path else path.name)
        if file_type(path) is not None:
            result.files.append(candidate)
        elif explicit:
            result.explicit_unsupported.append((candidate, unsupported_message(path)))
        else:
            result.unsupported.append(candidate)

    for raw in inputs:
        text = os.path.expanduser(str(raw))
        if _has_magic(text):
            pattern = os.path.abspath(text)
            base = Path(pattern)
            while _has_magic(str(base)):
                base = base.parent
            result.patterns.append(pattern)
            result.roots.append(pattern)
            matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
            files = [m for m in matches if m.is_file() and not _hidden(m.relative_to(base))]
            if not files:
                result.missing.append(str(raw))
                result.missing_roots.append(pattern)
            for path in files:
                consider(path, base)
            continue
        path = Path(os.path.abspath(text))
        if path.is_dir():
            result.folders.append(path)
            result.roots.append(str(path))
            for directory, subdirectories, names in os.walk(path):
                subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith("."):
                        consider(Path(directory) / name, path)
        elif path.is_file():
            result.named_files.append(path)
            result.roots.append(str(path))
            consider(path, path, explicit=True)
        else:
            result.named_files.append(path)
            result.missing.append(str(raw))
            result.missing_roots.append(str(path))
    return result
