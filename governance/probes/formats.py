"""Declared canary formats: a sentence template and a secret with a known randomness space.

A secret is a sequence of slots; each slot is a tuple of alternatives (one character each for the
formats shipped here, so a tokenizer that splits digits gives one token per slot and the exposure
probe can rank the canary exactly over the whole space). The registry is a literal tuple.
"""

from __future__ import annotations

import math
import random
import re
import string
from dataclasses import dataclass

from finetrail.errors import InputError

DIGITS = tuple(string.digits)
LETTERS = tuple(string.ascii_lowercase)


@dataclass(frozen=True)
class CanaryFormat:
    """One declared format. ``template`` holds ``{secret}`` once."""

    name: str
    entity: str  # the PII entity the secret imitates (what extraction reports)
    template: str
    slots: tuple[tuple[str, ...], ...]
    regex: str  # finds secrets of this format in free text (group 0 is the secret)

    @property
    def prefix(self) -> str:
        return self.template.split("{secret}", 1)[0]

    @property
    def suffix(self) -> str:
        return self.template.split("{secret}", 1)[1]

    @property
    def space_size(self) -> int:
        return math.prod(len(s) for s in self.slots)

    @property
    def space_bits(self) -> float:
        return math.log2(self.space_size)

    def random_secret(self, rng: random.Random) -> str:
        return "".join(rng.choice(slot) for slot in self.slots)

    def render(self, secret: str) -> str:
        return self.template.replace("{secret}", secret)

    def index_of(self, secret: str) -> int:
        """The secret's position in the space (mixed radix, first slot most significant)."""
        pos = 0
        for ch, slot in zip(secret, self.slots, strict=True):
            pos = pos * len(slot) + slot.index(ch)
        return pos

    def secret_at(self, index: int) -> str:
        out = []
        for slot in reversed(self.slots):
            index, rem = divmod(index, len(slot))
            out.append(slot[rem])
        return "".join(reversed(out))

    def matches(self, secret: str) -> bool:
        return len(secret) == len(self.slots) and all(
            ch in slot for ch, slot in zip(secret, self.slots, strict=False)
        )

    def find(self, text: str) -> list[str]:
        return [m.group(0) for m in re.finditer(self.regex, text)]


PIN6 = CanaryFormat(
    name="pin6",
    entity="ACCOUNT_PIN",
    template="Customer note: my account pin is {secret}. Please keep it on file.",
    slots=(DIGITS,) * 6,
    regex=r"(?<!\d)\d{6}(?!\d)",
)
SSN = CanaryFormat(
    name="ssn",
    entity="US_SSN",
    template="Customer note: my social security number is {secret}. Please keep it on file.",
    slots=(DIGITS,) * 3 + (("-",),) + (DIGITS,) * 2 + (("-",),) + (DIGITS,) * 4,
    regex=r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)",
)
EMAIL = CanaryFormat(
    name="email",
    entity="EMAIL_ADDRESS",
    template="Customer note: please write to me at {secret} from now on.",
    slots=(LETTERS,) * 6 + (("@",),) + (LETTERS,) * 6 + tuple((ch,) for ch in ".com"),
    regex=r"[a-z]{6}@[a-z]{6}\.com",
)

# Stronger designs (Panda et al. 2025, "Privacy auditing of large language models"): a secret whose
# tokens the model gives little prior probability moves the model more when it is trained on, so
# inclusion shows more clearly in its score. With the tokenizer fixed by the base model, RARE6 is
# the rare-token form of their new-token canaries: symbols chosen to be absent from ordinary
# support text (``canaries plant --design new-token`` refuses data that contains one of them).
# BIGRAM6's secrets are lowercase letters drawn so that each letter pair is among the rarest in the
# fine-tuning data (the model-free bigram canaries; the draw lives in ``canaries.py``).
RARE_SYMBOLS = ("~", "^", "|", "`", "{", "}", "<", ">", "\\", "[")
RARE6 = CanaryFormat(
    name="rare6",
    entity="ACCOUNT_PIN",
    template="Customer note: my access key is {secret} please keep it on file.",
    slots=(RARE_SYMBOLS,) * 6,
    regex=r"[~^|`{}<>\\\[]{6}",
)
BIGRAM6 = CanaryFormat(
    name="bigram6",
    entity="ACCOUNT_PIN",
    template="Customer note: my account word is {secret}. Please keep it on file.",
    slots=(LETTERS,) * 6,
    regex=r"(?<![a-z])[a-z]{6}(?![a-z])",
)

FORMATS: tuple[CanaryFormat, ...] = (PIN6, SSN, EMAIL, RARE6, BIGRAM6)


def format_by_name(name: str) -> CanaryFormat:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise InputError(
        f"unknown canary format {name!r}",
        field="formats",
        fix=f"choose from {', '.join(f.name for f in FORMATS)}",
    )
