"""Quality gates: a required `QualityLevel`, checked against what a session observed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

__all__ = ["GateOutcome", "QualityGate", "QualityLevel"]

GATE_KEY = "agentmw.quality_gate"
LEVEL_KEY = "agentmw.quality_level"
SCORE_KEY = "agentmw.gate_score"


class QualityLevel(IntEnum):
    """How thoroughly work was checked: MINIMAL < STANDARD < STRICT < RELEASE."""

    MINIMAL = 1
    STANDARD = 2
    STRICT = 3
    RELEASE = 4

    @classmethod
    def parse(cls, value: Any, argument: str = "quality level") -> QualityLevel:
        """A level from itself, its name (any case) or its number; errors name `argument`."""
        if isinstance(value, cls):
            return value
        names = ", ".join(m.name.lower() for m in cls)
        if isinstance(value, str):
            if value.strip().upper() in cls.__members__:
                return cls[value.strip().upper()]
        elif isinstance(value, int) and not isinstance(value, bool):
            if value in cls._value2member_map_:
                return cls(value)
        else:
            kind = type(value).__name__
            raise TypeError(f"{argument} must be a QualityLevel, its name or number; got {kind}")
        raise ValueError(f"{argument} must be one of {names}; got {value!r}")


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """The result of a gate check.

    Attributes:
        passed: the observed level meets the required one.
        required: the gate's level.
        observed: the level the work reached.
        score: observed / required, capped at 1.0 (the `gate_score` policy fact).
    """

    passed: bool
    required: QualityLevel
    observed: QualityLevel
    score: float


class QualityGate:
    """Requires work to reach at least `required` (a `QualityLevel`, its name or number)."""

    def __init__(self, required: QualityLevel | str | int) -> None:
        self.required = QualityLevel.parse(required, "required")

    def evaluate(self, observed: QualityLevel | str | int) -> GateOutcome:
        """Compare `observed` with the requirement (pure: no events)."""
        level = QualityLevel.parse(observed)
        score = min(1.0, level / self.required)
        return GateOutcome(level >= self.required, self.required, level, round(score, 6))

    def attach(self, session: Session) -> None:
        """Make this the gate `session.evaluate_gate` uses."""
        session.meta[GATE_KEY] = self

    def __repr__(self) -> str:
        return f"QualityGate(required={self.required.name})"


def evaluate_gate(
    session: Session, observed: QualityLevel | str | int, gate: QualityGate | None
) -> GateOutcome:
    """Check `observed` against `gate` (else the session's attached gate, else STANDARD).

    Emits `gate.passed` or `gate.failed` and records the `quality_level` and `gate_score` facts.
    """
    chosen = gate or session.meta.get(GATE_KEY) or QualityGate(QualityLevel.STANDARD)
    outcome = chosen.evaluate(observed)
    session.meta[LEVEL_KEY] = outcome.observed
    session.meta[SCORE_KEY] = outcome.score
    session.emit(
        "gate.passed" if outcome.passed else "gate.failed",
        data={
            "required": outcome.required.name.lower(),
            "observed": outcome.observed.name.lower(),
            "score": outcome.score,
        },
    )
    return outcome
