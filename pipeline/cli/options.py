"""Click parameter types for the command line's numeric options: typed ranges that also
refuse NaN and infinity (``click.FloatRange`` lets ``nan`` through, since every comparison
with it is false) and absurdly large values, so a bad number is one line naming the
option and the accepted range (exit status 2), never a traceback later in the work."""

from __future__ import annotations

import math

import click


class FiniteFloatRange(click.FloatRange):
    """A ``click.FloatRange`` whose value must also be finite."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number (accepted: {self._describe_range()})",
                      param, ctx)
        return number


# Upper bounds: far above any sensible use, low enough that a typo is caught before it
# allocates or spawns anything.
SEED = click.IntRange(0, 2 ** 32 - 1)  # numpy's SeedSequence and torch take any of these
JOBS = click.IntRange(1, 1024)
COPIES = click.IntRange(0, 100)
WINDOW_SECONDS = FiniteFloatRange(0.5, 60.0)
N_MELS = click.IntRange(8, 256)  # 1024-point FFT at 16 kHz: more bands would be empty
SHARE = FiniteFloatRange(0.0, 1.0)
FOLDS = click.IntRange(2, 100)  # more folds than speakers is refused by the index (folds.py)
EPOCHS = click.IntRange(1, 10_000)
VAL_FOLDS = click.IntRange(0, 99)
MEMBERS = click.IntRange(1, 32)
