#!/usr/bin/env python3
"""Which of the package's modules one recording passes through (issue 30): runs ``ser``
commands in this process under a profiler and prints, for each, the modules whose
functions ran and how often each was *entered* (called from another module), in the order
first entered.

    python scripts/walkthrough.py predict CLIP            # one recording through ser predict
    python scripts/walkthrough.py stages                  # a tiny corpus: index, extract,
                                                          # train (1 epoch), export
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def walk(args: list[str]) -> tuple[list[str], Counter]:
    """``(modules in the order first entered, {module: entries})`` of ``ser ARGS`` run in
    this process. An entry is a call into a ``pipeline`` module while no frame of that
    module is on the stack: a visit, however many of its
    functions it then calls; a generator's resumption is not one, nor a call of a
    dataclass's generated methods (``__init__``, ``__eq__``, ``__hash__``)."""
    from pipeline.cli import cli

    entries: Counter = Counter()
    order: list[str] = []
    resumable = set()  # generator frames already started: a resume is not an entry

    def profile(frame, event, _arg):
        name = frame.f_code.co_name
        if event != "call" or name == "<module>" or name.startswith("__"):
            return  # imports, and dataclasses' own methods (hash, eq, init)
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("pipeline."):
            return
        if frame.f_code.co_flags & (inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR):
            if frame in resumable:
                return
            resumable.add(frame)
        outer = frame.f_back
        while outer is not None:  # already inside this module further up: not an entry
            if outer.f_globals.get("__name__") == module:
                return
            outer = outer.f_back
        entries[module] += 1
        if module not in order:
            order.append(module)

    sys.setprofile(profile)
    try:
        with counting_opens() as opens:
            cli.main(args, prog_name="ser", standalone_mode=False)
    finally:
        sys.setprofile(None)
    if opens:
        most = max(opens.values())
        entries[f"(audio files opened: {len(opens)}, at most this many times each)"] = most
    return order, entries


@contextlib.contextmanager
def counting_opens():
    """``{path: times opened}`` of every ``soundfile.SoundFile`` / ``soundfile.info`` call
    made inside the block: how often a recording is opened and its header read."""
    import soundfile

    opens: Counter = Counter()
    real_init, real_info = soundfile.SoundFile.__init__, soundfile.info

    def init(self, file, *args, **kwargs):
        opens[str(getattr(file, "name", file))] += 1
        real_init(self, file, *args, **kwargs)

    def info(file, *args, **kwargs):
        opens[str(getattr(file, "name", file))] += 1
        return real_info(file, *args, **kwargs)

    soundfile.SoundFile.__init__, soundfile.info = init, info
    try:
        yield opens
    finally:
        soundfile.SoundFile.__init__, soundfile.info = real_init, real_info


def report(title: str, order: list[str], entries: Counter) -> None:
    print(f"{title}: {len(order)} modules, {sum(entries[m] for m in order)} entries")
    for module in order + [m for m in entries if m.startswith("(")]:
        print(f"  {module:48s} {entries[module]}x")


def stages() -> None:
    """Index, extract, train one epoch and export a tiny synthetic corpus."""
    sys.path.insert(0, str(ROOT))
    from tests.conftest import write_corpus

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root / "corpus", actors=(1, 2, 3, 4), emotions=range(1, 9), takes=1)
        dirs = ["--data-dir", str(root / "data"), "--artifacts-dir", str(root / "artifacts")]
        for stage in (["index", "--corpus", f"ravdess={root / 'corpus'}", "--folds", "2"],
                      ["extract", "-j", "1"], ["train", "--final", "--epochs", "1"],
                      ["export", "--no-test-figures"]):
            report(f"ser {stage[0]}", *walk(dirs + stage))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("predict", "stages"))
    parser.add_argument("clip", nargs="?")
    args = parser.parse_args()
    if args.what == "predict":
        report(f"ser predict {args.clip}", *walk(["predict", "-j", "1", args.clip]))
    else:
        stages()


if __name__ == "__main__":
    main()
