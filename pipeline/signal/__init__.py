"""From a recording to a model's input: decoding with a budget (``audio``, ``vbr_header``),
channel mixing and level (``conditioning``), speech detection (``vad``), the front end that
chains them (``frontend``, and ``stream`` for files too long to hold), log-mel and MFCC
features (``features``), and the signal changes used in training and at test time
(``augment``, ``channel``, ``views``). Imports only ``pipeline.core``."""
