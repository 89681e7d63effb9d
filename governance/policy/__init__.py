"""Policy packs: the rules a release gate applies.

- :mod:`.rules`: :class:`Policy`, :class:`Rule`, :class:`Condition`, :class:`Approvals`,
  :class:`Waiver` (frozen pydantic models);
- :mod:`.operators`: the literal operator registry and :func:`compare`;
- :mod:`.controls`: the regulatory items a rule serves, checked against the catalogue;
- :mod:`.load`: YAML with line and column in every error, :func:`lint_policy`, shipped packs.
"""

from finetrail.governance.policy.controls import FRAMEWORK_NAMES, Controls, control_catalogue
from finetrail.governance.policy.load import (
    LoadedPolicy,
    lint_policy,
    load_policy,
    resolve_policy,
    shipped_policies,
)
from finetrail.governance.policy.operators import OPERATORS, ORDERING, compare, fmt
from finetrail.governance.policy.rules import Approvals, Condition, Policy, Rule, Waiver

__all__ = [
    "FRAMEWORK_NAMES",
    "OPERATORS",
    "ORDERING",
    "Approvals",
    "Condition",
    "Controls",
    "LoadedPolicy",
    "Policy",
    "Rule",
    "Waiver",
    "compare",
    "control_catalogue",
    "fmt",
    "lint_policy",
    "load_policy",
    "resolve_policy",
    "shipped_policies",
]
