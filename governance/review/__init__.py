"""Reviews: signed sign-off bound to the exact files of a workspace (four-eyes).

- :func:`record_review` signs and appends an approval, rejection or comment;
- :func:`review_status` (and :func:`workspace_review_status`) is the one view of which reviews
  are current, stale or invalid and whether a policy's approval rule is met: the gate,
  ``finetrail review status`` and the reports all use it;
- keyring files: :func:`load_keyring`, :func:`add_trusted_key`, :func:`trust_in_workspace`;
- :func:`check_reviews` is ``verify``'s check of every review entry.

With a trust root (:mod:`finetrail.governance.trust`, ``--trust FILE``) the trust root's reviewer
keys replace the keyring everywhere above; every review binds the release it was signed for.
"""

from finetrail.governance.review.api import (
    ReviewRow,
    ReviewStatus,
    review_status,
    state_of,
    workspace_review_status,
)
from finetrail.governance.review.assess import (
    GATE_PREFIX,
    REVIEW_PREFIX,
    Assessment,
    FourEyes,
    ReviewState,
    assess,
    authors,
    check_reviews,
    digest_as_of,
    first_recorded,
    four_eyes,
    record_review,
    summary,
)
from finetrail.governance.review.keyring import (
    KEYRING_ENV,
    KEYRING_EVENT,
    KEYRING_FILE,
    add_trusted_key,
    check_keyring_file,
    keyring_path,
    load_keyring,
    trust_in_workspace,
)

__all__ = [
    "GATE_PREFIX",
    "KEYRING_ENV",
    "KEYRING_EVENT",
    "KEYRING_FILE",
    "REVIEW_PREFIX",
    "Assessment",
    "FourEyes",
    "ReviewRow",
    "ReviewState",
    "ReviewStatus",
    "add_trusted_key",
    "assess",
    "authors",
    "check_keyring_file",
    "check_reviews",
    "digest_as_of",
    "first_recorded",
    "four_eyes",
    "keyring_path",
    "load_keyring",
    "record_review",
    "review_status",
    "state_of",
    "summary",
    "trust_in_workspace",
    "workspace_review_status",
]
