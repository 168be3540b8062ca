"""The result of checking one observable, shared by all validators."""

from dataclasses import dataclass, field


@dataclass
class Verdict:
    valid: bool
    kind: str  # what the value is, e.g. "IPv4 address", "sha256", "unknown"
    normalized: str | None = None
    problems: list[str] = field(default_factory=list)  # why it is not well-formed
    details: dict = field(default_factory=dict)
    # Facts worth a taxonomy of their own: (level, predicate, value).
    notes: list[tuple[str, str, object]] = field(default_factory=list)

    def invalid(self, problem: str) -> "Verdict":
        self.valid = False
        self.problems.append(problem)
        return self

    def note(self, level: str, predicate: str, value) -> None:
        self.notes.append((level, predicate, value))

    def as_dict(self) -> dict:
        return {
            "valid": self.valid,
            "kind": self.kind,
            "normalized": self.normalized,
            "problems": self.problems,
            "details": self.details,
            "notes": [{"level": lvl, "predicate": pred, "value": val} for lvl, pred, val in self.notes],
        }


def has_control_chars(text: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)
