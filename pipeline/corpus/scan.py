"""Finding audio files: the one rule every stage that walks folders follows (``index``,
``evaluate``, ``predict``).

- A file is audio when its suffix names a format this machine's libsndfile decodes
  (``soundfile.available_formats()``: WAV, FLAC, OGG/Opus, MP3, AIFF, CAF, ... as the
  installed library has them), not by a fixed list of our own.
- Hidden files and folders (a name starting with ``.``) are skipped: macOS writes
  ``._name.wav`` resource forks beside every file on a foreign disk, and editors and
  version control keep their state in dot folders.
- A file named explicitly (not found in a folder) is always kept, whatever its name, so
  that it gets a result or an error row of its own.
- A folder is walked through open folder descriptors, not by path: a file nested deeper
  than the system's longest path (``PATH_MAX``) is still found, and kept, so that it gets
  its error row ("cannot open (File name too long)") while the rest of the batch is
  scored. A link to a folder is not followed (no loops).
- A folder that cannot be listed (no read permission, too many open files) is skipped and
  named, never the end of the walk.
- What was skipped is counted by reason, and ``Scan.summary`` says it in one line.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

UNREADABLE = "unreadable folder"

# Suffixes of libsndfile's formats; each counts only when the installed library lists the
# format. RAW (headerless) is left out: it cannot be decoded without being told its layout.
_SUFFIXES = {
    "WAV": (".wav",), "WAVEX": (".wav",), "RF64": (".rf64",), "W64": (".w64",),
    "FLAC": (".flac",), "OGG": (".ogg", ".oga", ".opus"), "MP3": (".mp3",),
    "AIFF": (".aiff", ".aif", ".aifc"), "CAF": (".caf",), "AU": (".au", ".snd"),
    "NIST": (".sph", ".nist"), "IRCAM": (".sf",), "VOC": (".voc",), "SD2": (".sd2",),
    "HTK": (".htk",), "SVX": (".8svx", ".iff"), "PAF": (".paf",),
    "PVF": (".pvf",), "AVR": (".avr",), "XI": (".xi",), "MAT4": (".mat4",),
    "MAT5": (".mat5",), "MPC2K": (".mpc2k",), "SDS": (".sds",), "WVE": (".wve",),
}


@lru_cache(maxsize=1)
def audio_suffixes() -> frozenset[str]:
    """Lower-case suffixes (with the dot) of the formats the installed libsndfile reads."""
    import soundfile

    available = soundfile.available_formats()
    return frozenset(s for name, suffixes in _SUFFIXES.items() if name in available
                     for s in suffixes)


@dataclass
class Scan:
    """``files``: the audio files to process, sorted within each folder given; ``skipped``:
    the files left out, by reason (``"unreadable folder"``: folders that could not be
    listed); ``unreadable``: each such folder and why (``strerror``)."""

    files: list[Path] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))
    unreadable: dict[Path, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line, e.g. ``"12 audio files; skipped 3 (2 hidden, 1 not audio (.txt))"``,
        naming the folders that could not be listed and the fix."""
        line = f"{len(self.files)} audio file{'s' if len(self.files) != 1 else ''}"
        if self.skipped:
            total = sum(map(len, self.skipped.values()))
            parts = ", ".join(f"{len(paths)} {reason}" for reason, paths in sorted(self.skipped.items()))
            line += f"; skipped {total} ({parts})"
        if self.unreadable:
            named = [f"{folder} ({why})" for folder, why in sorted(self.unreadable.items())]
            more = f" and {len(named) - 3} more" if len(named) > 3 else ""
            line += (f"; cannot list {', '.join(named[:3])}{more}: give read and search "
                     "permission, or leave the folder out")
        return line


def is_hidden(path: Path, root: Path) -> bool:
    """Whether ``path`` or a folder between ``root`` and it starts with a dot."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def scan(inputs: list[str | Path]) -> Scan:
    """Files as given, and the audio files found recursively under folders (see module
    docstring). A missing path, or one too long to look at, is kept as given, to get its
    error row. Raises nothing for an unreadable folder: it is in ``unreadable``."""
    result = Scan()
    suffixes = audio_suffixes()
    for item in map(Path, inputs):
        try:
            is_folder = item.is_dir()
        except OSError:  # a name too long to look up: kept, so that it gets its error row
            is_folder = False
        if not is_folder:
            result.files.append(item)
            continue
        for path in sorted(_walk(item, result)):
            if is_hidden(path, item):
                result.skipped["hidden"].append(path)
            elif path.suffix.lower() not in suffixes:
                result.skipped[f"not audio ({path.suffix.lower() or 'no suffix'})"].append(path)
            else:
                result.files.append(path)
    return result


def _unreadable(result: Scan, folder: Path, exc: OSError) -> None:
    result.unreadable[folder] = exc.strerror or type(exc).__name__
    result.skipped[UNREADABLE].append(folder)


def _walk(root: Path, result: Scan) -> list[Path]:
    """Every entry under ``root`` that is not a folder (a broken link named .wav is kept,
    to get its error row; a link to a folder is neither followed nor kept). Each folder is
    opened relative to its parent's descriptor, so the depth is not bounded by
    ``PATH_MAX``; one descriptor is held per level being walked."""
    found: list[Path] = []
    stack: list[tuple[int, Path, Iterator[tuple[str, str]]]] = []

    def enter(name: str | Path, folder: Path, parent_fd: int | None) -> None:
        flags = os.O_RDONLY | os.O_DIRECTORY | (os.O_NOFOLLOW if parent_fd is not None else 0)
        try:
            fd = os.open(name, flags, dir_fd=parent_fd)
        except OSError as exc:
            _unreadable(result, folder, exc)
            return
        try:
            with os.scandir(fd) as entries:
                listed = [(entry.name, _kind(entry)) for entry in entries]
        except OSError as exc:
            os.close(fd)
            _unreadable(result, folder, exc)
            return
        stack.append((fd, folder, iter(listed)))

    enter(root, root, None)
    try:
        while stack:
            fd, folder, entries = stack[-1]
            name, kind = next(entries, ("", "done"))
            if kind == "done":
                os.close(stack.pop()[0])
            elif kind == "file":
                found.append(folder / name)
            elif kind == "special":  # reading a pipe found in a folder would wait forever
                result.skipped["not a regular file (a pipe, device or socket)"].append(
                    folder / name)
            elif kind == "folder":
                enter(name, folder / name, fd)
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    return found


def _kind(entry: os.DirEntry) -> str:
    """``"folder"`` (walked), ``"link to a folder"`` (left alone), ``"special"`` (a pipe,
    device or socket: skipped) or ``"file"`` (anything else: a file, a broken link, an
    entry that vanished)."""
    import stat

    try:
        if entry.is_dir(follow_symlinks=False):
            return "folder"
        if entry.is_dir():
            return "link to a folder"
        return "file" if stat.S_ISREG(entry.stat().st_mode) else "special"
    except OSError:
        return "file"
