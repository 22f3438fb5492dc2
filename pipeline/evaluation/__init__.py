"""Measuring a model: cross-validated folds of training runs (``evaluate``) and a bundle on
any labelled folder or manifest (``bundle_eval``), both scoring through
``pipeline.inference``."""
