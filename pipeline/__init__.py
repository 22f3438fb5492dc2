"""Speech emotion recognition on labelled corpora (RAVDESS by default): a staged, cached
MFCC + log-mel CNN pipeline.

The command line is ``pipeline.cli`` (``ser``; also ``python -m pipeline``). The stages,
each a module with one public function: ``download``, ``index``, ``extract`` (features
into HDF5 shards), ``train``, ``evaluate``, ``bundle`` (export / load) and ``predict``;
``docs/architecture.md`` maps the rest. To score audio from Python, ``pipeline.inference.api``.
"""

__version__ = "0.2.0"
