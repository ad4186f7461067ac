"""Which moderation callbacks trigger the policy (pure: the body alone decides)."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.moderation.policy import ModerationPolicy, forbid_reason
from tests.support.helpers import payload

PORN: dict[str, Any] = payload("image_moderation_317.json")  # suggestion Block, Porn 99
AUDIO: dict[str, Any] = payload("audio_moderation_315.json")


def test_default_policy_is_off_and_blocks_only_when_on() -> None:
    assert ModerationPolicy().match("porn", PORN) is None
    forbid = ModerationPolicy(action="forbid")
    assert forbid.match("porn", PORN) == "suggestion Block"
    assert forbid.match("porn", {**PORN, "suggestion": "block"}) == "suggestion block"
    assert forbid.match("porn", {**PORN, "suggestion": "Review"}) is None
    assert forbid.match("audio_moderation", {**AUDIO, "suggestion": "Block"}) is None  # kinds


@pytest.mark.parametrize(
    ("labels", "min_score", "expected"),
    [
        (("Porn",), None, "label Porn"),  # the top-level label (no single score there)
        (("PornHigh",), None, "label PornHigh"),  # a sub-label: the grade
        (("Porn",), 95.0, "label Porn score 99"),  # the flagged labelResults entry
        (("Porn",), 99.5, None),
        ((), 90.0, "label Porn score 99"),  # a score alone: any flagged label
        (("Sexy",), None, None),  # listed in labelResults but not flagged (HitFlag 0)
    ],
)
def test_labels_and_scores(
    labels: tuple[str, ...], min_score: float | None, expected: str | None
) -> None:
    policy = ModerationPolicy(action="drop", suggestions=(), labels=labels, min_score=min_score)
    assert policy.match("porn", {**PORN, "suggestion": "Review"}) == expected


def test_audio_moderation_when_enabled() -> None:
    policy = ModerationPolicy(action="forbid", kinds=("porn", "audio_moderation"))
    assert policy.match("audio_moderation", {**AUDIO, "suggestion": "Block"}) == "suggestion Block"
    scored = ModerationPolicy(
        action="forbid",
        kinds=("audio_moderation",),
        suggestions=(),
        labels=("Porn",),
        min_score=80,
    )
    body = {**AUDIO, "suggestion": "Review", "label": "Porn", "score": 85}
    assert scored.match("audio_moderation", body) == "label Porn score 85"
    assert scored.match("audio_moderation", {**body, "score": "79"}) is None


def test_the_policy_travels_as_json_and_refuses_nonsense() -> None:
    policy = ModerationPolicy(action="forbid", labels=("Porn",), min_score=90, dry_run=True)
    assert ModerationPolicy.from_json(policy.to_json()) == policy
    with pytest.raises(ValueError, match="not a moderation kind"):
        ModerationPolicy(kinds=("snapshot",))
    with pytest.raises(ValueError, match="90 days"):
        ModerationPolicy(forbid_seconds=91 * 86_400)


def test_forbid_reason_stays_within_2048_bytes() -> None:
    policy = ModerationPolicy(action="forbid", reason="审核" * 2000)
    text = forbid_reason(policy, "porn", "suggestion Block", "01a2")
    assert len(text.encode()) <= 2048
    assert text.startswith("审核")
    short = forbid_reason(ModerationPolicy(action="forbid"), "porn", "suggestion Block", "e1")
    assert short == "receiver moderation policy (porn: suggestion Block; event e1)"
