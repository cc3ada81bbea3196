"""The verdict: gate results and test outcomes -> promote / rollback / hold, as JSON.

``schema`` holds the records and the one reader / writer (standard library only), ``rules``
the rules (:func:`decide`, :func:`redecide`), ``provenance`` what makes a verdict auditable.
"""

from guardrails.verdict.rules import adjust, decide, redecide, restatus
from guardrails.verdict.schema import (
    SCHEMA_VERSION,
    Decision,
    GateResult,
    Status,
    TestOutcome,
    Verdict,
    atomic_write_text,
    load_verdict,
    write_verdict,
)

__all__ = [
    "SCHEMA_VERSION",
    "Decision",
    "GateResult",
    "Status",
    "TestOutcome",
    "Verdict",
    "adjust",
    "atomic_write_text",
    "decide",
    "load_verdict",
    "redecide",
    "restatus",
    "write_verdict",
]
