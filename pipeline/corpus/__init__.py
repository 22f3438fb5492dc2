"""Labelled corpora and the feature store: getting a corpus (``download``), reading its
layout and labels (``recipes``, ``manifest``), indexing its clips (``index``, ``scan``,
``duplicates``), speaker-disjoint folds and splits (``folds``, ``splits``), what a bundle
says about its corpora (``card``), and extracting features into HDF5 shards (``extract``,
``store``). Imports ``pipeline.core`` and ``pipeline.signal``."""
