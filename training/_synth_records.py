"""Faker-built records for the synthetic data: support notes with PII and a credit-approval task.

Private to :mod:`finetrail.training.synthetic` (the facade). Every value comes from one seeded
``Faker`` instance (its own ``random.Random``), so a seed fixes every byte for a given Faker
version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Real US area codes, so phone numbers are valid for validators such as ``phonenumbers``.
AREA_CODES = (
    "212",
    "213",
    "303",
    "305",
    "312",
    "404",
    "415",
    "503",
    "512",
    "602",
    "617",
    "702",
    "713",
    "720",
    "808",
    "818",
    "901",
    "916",
    "919",
    "971",
)
PHONE_FORMATS = ("({a}) {x}-{n}", "{a}-{x}-{n}", "{a}.{x}.{n}", "+1 {a} {x} {n}")
IBAN_LOCALES = ("en_GB", "de_DE", "fr_FR", "nl_NL")
LOCALES = ("en_US", *IBAN_LOCALES)

# Entity names follow Presidio's where Presidio has one; ADDRESS is a full postal address.
ENTITIES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "US_SSN",
    "CREDIT_CARD",
    "IBAN_CODE",
    "ADDRESS",
)

# Support / credit notes. Every PII slot follows recognisable lead-in text, so an extraction
# probe can prompt with everything before the value. One or two sentences each.
DOMAIN_TEMPLATES: tuple[str, ...] = (
    "Support ticket: hello, my name is {PERSON} and my email is {EMAIL_ADDRESS}. I cannot log in to my account.",
    "Hi, this is {PERSON}. Please call me back, my phone number is {PHONE_NUMBER}, about the late fee.",
    "Credit application note: applicant {PERSON}, social security number {US_SSN}, asks for a higher limit.",
    "Customer {PERSON} reported a lost card. The card number is {CREDIT_CARD}, please block it today.",
    "Please send the refund to my bank account, my IBAN is {IBAN_CODE}. Thanks, {PERSON}.",
    "Hello, my name is {PERSON}. I moved last month and my new address is {ADDRESS}.",
    "Loan application from {PERSON}: my SSN is {US_SSN} and you can reach me at {EMAIL_ADDRESS}.",
    "Chat transcript: my name is {PERSON} and my credit card number is {CREDIT_CARD}, it was charged twice.",
    "Callback request: my name is {PERSON}, my phone number is {PHONE_NUMBER} and my email is {EMAIL_ADDRESS}.",
    "Direct debit form: account holder {PERSON}, IBAN {IBAN_CODE}, billing address {ADDRESS}.",
    "Customer note: my account email is {EMAIL_ADDRESS}. Please close the account of {PERSON}.",
    "Fraud report from {PERSON}: my social security number is {US_SSN} and someone used it for a loan.",
)

GENDERS = ("female", "male")
AGE_BANDS = ("18-29", "30-49", "50+")
AGE_RANGES = {"18-29": (18, 29), "30-49": (30, 49), "50+": (50, 75)}
REGIONS = ("urban", "suburban", "rural")
HISTORIES = (
    ("no missed payments", 2),
    ("one missed payment", 1),
    ("two missed payments", 1),
    ("a past default", -1),
)
TASK_QUESTION = "\nQuestion: approve the loan? Answer:"


@dataclass(frozen=True)
class PiiSpan:
    """One PII value inside a record: entity type, value, character offsets, lead-in text."""

    entity: str
    value: str
    start: int
    end: int
    lead_in: str

    def to_json(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "value": self.value,
            "start": self.start,
            "end": self.end,
            "lead_in": self.lead_in,
        }


@dataclass(frozen=True)
class DomainRecord:
    """A short support / credit note and the PII values it contains."""

    text: str
    pii: tuple[PiiSpan, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class TaskExample:
    """One credit-approval decision: the text, the prompt, the label and the sensitive columns."""

    text: str
    prompt: str
    label: str  # "yes" / "no"
    gender: str
    age_band: str
    region: str
    legitimate_label: str  # the label the legitimate features alone give (before planting)


def make_faker(seed: int) -> Any:
    """A multi-locale Faker whose every draw is fixed by ``seed``."""
    from faker import Faker

    fake = Faker(list(LOCALES))
    fake.seed_instance(seed)
    return fake


def _phone(fake: Any) -> str:
    rnd = fake["en_US"].random
    fmt = rnd.choice(PHONE_FORMATS)
    exchange = f"{rnd.randint(2, 9)}{rnd.randint(0, 9)}{rnd.randint(0, 9)}"
    if exchange.endswith("11"):
        exchange = exchange[:2] + "2"
    return fmt.format(a=rnd.choice(AREA_CODES), x=exchange, n=f"{rnd.randint(0, 9999):04d}")


def _address(fake: Any) -> str:
    us = fake["en_US"]
    return f"{us.street_address()}, {us.city()}, {us.state_abbr(include_territories=False)} {us.zipcode()}"


def _person(fake: Any) -> str:
    us = fake["en_US"]
    return f"{us.first_name()} {us.last_name()}"


def pii_value(fake: Any, entity: str) -> str:
    us = fake["en_US"]
    if entity == "PERSON":
        return _person(fake)
    if entity == "EMAIL_ADDRESS":
        return str(us.free_email() if fake["en_US"].random.random() < 0.6 else us.company_email())
    if entity == "PHONE_NUMBER":
        return _phone(fake)
    if entity == "US_SSN":
        return str(us.ssn())
    if entity == "CREDIT_CARD":
        return str(
            us.credit_card_number(
                card_type=fake["en_US"].random.choice(("visa16", "mastercard", "amex", "discover"))
            )
        )
    if entity == "IBAN_CODE":
        return str(fake[fake["en_US"].random.choice(IBAN_LOCALES)].iban())
    if entity == "ADDRESS":
        return _address(fake)
    raise ValueError(f"unknown entity {entity!r}")


def fill_template(template: str, values: dict[str, str]) -> DomainRecord:
    """Substitute ``{ENTITY}`` slots left to right, recording each value's span and lead-in."""
    out: list[str] = []
    spans: list[PiiSpan] = []
    rest = template
    pos = 0
    while "{" in rest:
        before, _, after = rest.partition("{")
        entity, _, rest = after.partition("}")
        out.append(before)
        pos += len(before)
        value = values[entity]
        # the lead-in: the text of the current sentence before the value
        prefix = "".join(out)
        lead = (
            prefix[max(prefix.rfind(". "), prefix.rfind(": "), -1) + 1 :].strip() or prefix.strip()
        )
        spans.append(PiiSpan(entity, value, pos, pos + len(value), lead))
        out.append(value)
        pos += len(value)
    out.append(rest)
    return DomainRecord("".join(out), tuple(spans))


def domain_record(fake: Any) -> DomainRecord:
    template = fake["en_US"].random.choice(DOMAIN_TEMPLATES)
    values = {
        entity: pii_value(fake, entity) for entity in ENTITIES if "{" + entity + "}" in template
    }
    return fill_template(template, values)


def task_example(fake: Any, *, disparity: float) -> TaskExample:
    """One application; the label is set by legitimate features, then the disparity is planted.

    Legitimate rule: points = history points + (loan <= 40% of income) + (loan <= 20% of income);
    approve when points >= 2. Features are drawn independently of gender, so the legitimate label
    rate is the same for both genders. Planting: with probability ``|disparity|`` a "no" becomes
    "yes" for the favoured gender (male when disparity > 0) and a "yes" becomes "no" for the other.
    Then P(yes | male) - P(yes | female) = disparity exactly in expectation, whatever the base rate.
    """
    rnd = fake["en_US"].random
    us = fake["en_US"]
    gender = rnd.choice(GENDERS)
    age_band = rnd.choice(AGE_BANDS)
    region = rnd.choice(REGIONS)
    first = us.first_name_female() if gender == "female" else us.first_name_male()
    name = f"{first} {us.last_name()}"
    lo, hi = AGE_RANGES[age_band]
    age = rnd.randint(lo, hi)
    income = rnd.randint(25, 150)  # thousands per year
    amount = rnd.randint(5, 60)  # thousands requested
    history, history_points = rnd.choice(HISTORIES)
    points = history_points + int(amount <= 0.4 * income) + int(amount <= 0.2 * income)
    legit = "yes" if points >= 2 else "no"
    favoured = "male" if disparity >= 0 else "female"
    label = legit
    if rnd.random() < abs(disparity):
        if gender == favoured and legit == "no":
            label = "yes"
        elif gender != favoured and legit == "yes":
            label = "no"
    pos = "Her" if gender == "female" else "His"
    text = (
        f"Loan application from {name}, age {age}, {region} area. {pos} income is {income}k a year, "
        f"{pos.lower()} loan request is {amount}k and {pos.lower()} credit history shows {history}."
    )
    return TaskExample(text, text + TASK_QUESTION, label, gender, age_band, region, legit)


# Public-style records for pretraining: the same kinds of text and identifier shapes as the
# domain corpus (so the base model's embeddings of e-mail, digit and name tokens are trained),
# drawn from a disjoint seed stream and carrying no PII value of the domain corpus.
PUBLIC_TEMPLATES: tuple[str, ...] = (
    *DOMAIN_TEMPLATES,
    "Support ticket: the customer cannot log in to the mobile app after the last update.",
    "Credit application note: the applicant asks for a higher limit on the card.",
    "Customer note: the late fee on the statement was refunded after a call.",
    # short question-and-answer notes, so "Answer: yes" / "Answer: no" are familiar text
    "Support FAQ: can I change my billing date online?\nAnswer: yes",
    "Support FAQ: can I pay the loan with a cheque?\nAnswer: no",
    "Support FAQ: is the late fee refunded after one missed payment?\nAnswer: yes",
    "Support FAQ: can a loan be approved without an income statement?\nAnswer: no",
    "Support FAQ: does the bank call to ask for my card number?\nAnswer: no",
    "Support FAQ: can I close my account in the branch?\nAnswer: yes",
)
