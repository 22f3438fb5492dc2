"""Speech emotion recognition on RAVDESS: a staged, cached MFCC + mel CNN pipeline.

Stages (each a module with one public function, called by ``cli.py``):
``corpus`` (download, index), ``extract`` (features into HDF5 shards), ``train``,
``evaluate``, ``bundle`` (export / load), ``predict``.
"""

__version__ = "0.2.0"
