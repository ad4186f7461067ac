"""The moderation policy: which moderation callbacks trigger which action (pure, no I/O).

    policy = ModerationPolicy(action="forbid")          # 317 with suggestion Block
    policy.match("porn", {"suggestion": "Block", ...})  # -> "suggestion Block"

Read by the fold process (it records an action in the same transaction as the triggering event,
`receiver.moderation.book`), so it travels to that process as JSON (`to_json`/`from_json`) and
decides on the stored body alone: the same body always gives the same decision, also when a
fold is done again after a crash.

A callback triggers when its kind is one of `kinds` and either its top-level `suggestion` is one
of `suggestions` (case-insensitive; CSS sends `Block`/`Review`/`Pass`), or one of its labelled
results passes the label/score rule: its label or sub-label (`Porn`, `PornHigh`) is one of
`labels` (when labels are given) and its score is at least `min_score` (when a score is given).
With neither labels nor a score the label/score rule is off.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import orjson

from receiver.settings import Settings

Action = Literal["none", "drop", "forbid"]
# The moderation kinds a policy may act on (names from receiver.events.kinds).
MODERATION_KINDS: Final = ("porn", "audio_moderation")
# ForbidLiveStream: "A stream can be disabled for up to 90 days" (seed 001, line 16358).
MAX_FORBID_SECONDS: Final = 90 * 86_400
# ForbidLiveStream's Reason: "Length limit: 2,048 bytes".
MAX_REASON_BYTES: Final = 2048
# The lists of labelled results, in either spelling (317 camelCase, 315 snake_case).
_RESULT_LISTS: Final = (
    "labelResults",
    "label_results",
    "objectResults",
    "object_results",
    "ocrResults",
    "ocr_results",
    "libResults",
    "lib_results",
    "language_results",
    "moan_results",
    "recognition_results",
    "speaker_results",
    "text_results",
)


@dataclass(frozen=True, slots=True)
class ModerationPolicy:
    """What to do on a moderation hit; `action="none"` (the default) does nothing at all."""

    action: Action = "none"
    kinds: tuple[str, ...] = ("porn",)
    suggestions: tuple[str, ...] = ("Block",)
    labels: tuple[str, ...] = ()
    min_score: float | None = None
    forbid_seconds: float = 6 * 3600
    reason: str = "receiver moderation policy"
    dry_run: bool = False
    _suggestions: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(MODERATION_KINDS))
        if unknown:
            raise ValueError(f"not a moderation kind: {unknown[0]!r} (one of {MODERATION_KINDS})")
        if not 0 < self.forbid_seconds <= MAX_FORBID_SECONDS:
            raise ValueError("the forbid duration must be more than 0 and at most 90 days")
        object.__setattr__(self, "_suggestions", frozenset(s.lower() for s in self.suggestions))

    @property
    def active(self) -> bool:
        return self.action != "none"

    def match(self, kind: str, body: Mapping[str, Any]) -> str | None:
        """Why `body` (of `kind`) triggers the policy, in words; None when it does not."""
        if not self.active or kind not in self.kinds:
            return None
        suggestion = body.get("suggestion")
        if isinstance(suggestion, str) and suggestion.lower() in self._suggestions:
            return f"suggestion {suggestion}"
        if not self.labels and self.min_score is None:
            return None
        for label, sub_label, score in _labelled(body):
            if self.labels and label not in self.labels and sub_label not in self.labels:
                continue
            if self.min_score is not None and (score is None or score < self.min_score):
                continue
            name = label if not self.labels or label in self.labels else sub_label
            return f"label {name}" + ("" if score is None else f" score {score:g}")
        return None

    @classmethod
    def from_settings(cls, settings: Settings) -> ModerationPolicy:
        return cls(
            action=settings.moderation_action,
            kinds=tuple(settings.moderation_kinds),
            suggestions=tuple(settings.moderation_suggestions),
            labels=tuple(settings.moderation_labels),
            min_score=settings.moderation_min_score,
            forbid_seconds=settings.moderation_forbid_hours * 3600,
            reason=settings.moderation_reason,
            dry_run=settings.moderation_dry_run,
        )

    def to_json(self) -> str:
        fields = asdict(self)
        fields.pop("_suggestions")
        return orjson.dumps(fields).decode()

    @classmethod
    def from_json(cls, text: str) -> ModerationPolicy:
        fields = orjson.loads(text)
        for name in ("kinds", "suggestions", "labels"):
            fields[name] = tuple(fields[name])
        return cls(**fields)


def _labelled(
    body: Mapping[str, Any],
) -> Iterator[tuple[str | None, str | None, float | None]]:
    """(label, sub-label, score) of the body itself and of each result that flagged something.

    The sub-label is the finer grade CSS gives a label (`Porn` / `PornHigh`), so a policy can
    name either."""
    sub = body.get("subLabel", body.get("sub_label"))
    yield _text(body.get("label")), _text(sub), _number(body.get("score"))
    for name in _RESULT_LISTS:
        results = body.get(name)
        if not isinstance(results, list):
            continue
        for result in results:
            if not isinstance(result, dict):
                continue
            hit = result.get("HitFlag", result.get("hitFlag"))
            if hit is not None and hit != 1:
                continue  # 317 lists results that did not flag anything too
            label = _text(result.get("Label", result.get("label")))
            sub = _text(result.get("SubLabel", result.get("subLabel")))
            yield label, sub, _number(result.get("Score", result.get("score")))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None  # 317's top-level `score` is a list of per-type scores: not one score


def forbid_reason(policy: ModerationPolicy, kind: str, why: str, event_id: str) -> str:
    """ForbidLiveStream's Reason: the configured text and what triggered, within 2,048 bytes."""
    text = f"{policy.reason} ({kind}: {why}; event {event_id})"
    raw = text.encode()
    if len(raw) <= MAX_REASON_BYTES:
        return text
    return raw[:MAX_REASON_BYTES].decode("utf-8", "ignore")
