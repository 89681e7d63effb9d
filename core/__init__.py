"""finetrail: auditable fine-tuning of language models.

Layers (each a subpackage):

- :mod:`finetrail.training` fine-tunes under differential privacy and writes evidence;
- :mod:`finetrail.governance` records provenance, judges evidence, gates releases and keeps the ledger;
- :mod:`finetrail.reports` renders evidence into documentation packs and the analyst dossier.

Importing this package is light: no torch, transformers, mlflow or presidio.
"""

from finetrail._version import __version__
from finetrail.errors import FinetrailError

__all__ = ["FinetrailError", "__version__"]
