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
- What was skipped is counted by reason, and ``Scan.summary`` says it in one line.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

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
    the files left out, by reason."""

    files: list[Path] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))

    def summary(self) -> str:
        """One line, e.g. ``"12 audio files; skipped 3 (2 hidden, 1 not audio (.txt))"``."""
        line = f"{len(self.files)} audio file{'s' if len(self.files) != 1 else ''}"
        if self.skipped:
            total = sum(map(len, self.skipped.values()))
            parts = ", ".join(f"{len(paths)} {reason}" for reason, paths in sorted(self.skipped.items()))
            line += f"; skipped {total} ({parts})"
        return line


def is_hidden(path: Path, root: Path) -> bool:
    """Whether ``path`` or a folder between ``root`` and it starts with a dot."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def scan(inputs: list[str | Path]) -> Scan:
    """Files as given, and the audio files found recursively under folders (see module
    docstring). A missing path is kept as given, to get its error row."""
    result = Scan()
    suffixes = audio_suffixes()
    for item in map(Path, inputs):
        if not item.is_dir():
            result.files.append(item)
            continue
        # not is_file(): a broken link named .wav is kept, to get its error row
        for path in sorted(p for p in item.rglob("*") if not p.is_dir()):
            if is_hidden(path, item):
                result.skipped["hidden"].append(path)
            elif path.suffix.lower() not in suffixes:
                result.skipped[f"not audio ({path.suffix.lower() or 'no suffix'})"].append(path)
            else:
                result.files.append(path)
    return result
