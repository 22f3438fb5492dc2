"""Scoring recordings with a trained model: the ``Scorer`` (``scorer``), scoring files,
folders and segments (``predict``), the scoring record and its outputs (``results``,
``sink``), bundles and their export (``bundle``, ``bundle_header``, ``onnx_bundle``),
temperature calibration (``calibration``), the Python API (``api``) and the HTTP service
(``serve``, its page in ``web/``). The shipped model is ``shipped/``. Never imports
``pipeline.training``, nor torch at module level."""
