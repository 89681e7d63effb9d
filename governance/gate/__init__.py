"""The release gate: evaluate a policy on a workspace, fail closed, explain every outcome.

- :mod:`.api`: :func:`run_gate` (evaluate, record the decision and its attestation);
- :mod:`.evaluate`: every rule, every outcome;
- :mod:`.outputs`: the terminal table, JUnit XML and SARIF 2.1.0;
- :mod:`.attest`: the in-toto statement in a DSSE envelope, and ``verify``'s check of it;
- :mod:`.mlflow_aliases`: the tags and candidate/approved aliases a decision implies (no mlflow);
- :mod:`.promote`: ``finetrail registry promote`` (applies them; the only mlflow import);
- :mod:`.cli`: ``finetrail gate``.

Light at import: no torch, transformers, mlflow or presidio.
"""

from finetrail.governance.gate.api import GateResult, next_sequence, run_gate
from finetrail.governance.gate.evaluate import evaluate

__all__ = ["GateResult", "evaluate", "next_sequence", "run_gate"]
