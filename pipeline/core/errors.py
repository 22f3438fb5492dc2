"""The project's exceptions. Each message names the bad value and the fix; the CLI prints
it as one line and exits non-zero."""


class PipelineError(Exception):
    """Base class: an expected failure with a message meant for the user."""


class DownloadError(PipelineError):
    """The corpus could not be fetched, verified or unpacked."""


class CorpusError(PipelineError):
    """The corpus or its index is missing or unusable."""


class StaleInputError(PipelineError):
    """A stage's input was produced from another config or index: rerun the named stage."""


class AudioError(PipelineError):
    """A file is not usable audio (unreadable, empty, silent, truncated)."""


class UnreadableAudioError(AudioError):
    """Bytes that are no audio format libsndfile decodes (or a truncated file)."""


class TooLongError(AudioError):
    """A recording longer than a caller's limit (the service's upload limit)."""


class SilentError(AudioError):
    """A readable recording with no signal (peak below -80 dBFS once DC is removed)."""


class NoSpeechError(AudioError):
    """A readable, non-silent recording in which the speech detector found too little speech."""


class TrainingError(PipelineError):
    """Training cannot continue (NaN loss, empty split, bad checkpoint)."""


class BundleError(PipelineError):
    """A model bundle is missing, foreign, tampered with or from an incompatible version."""
