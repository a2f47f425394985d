"""When a sequence step is due: the one definition of the DM due windows, used by the DM
cycle (plan_due writes the intent rows) and by the DM sensor (is there work for a run?).

Step `day` d with expiry e is due for a subscriber who joined in (now - d - e, now - d]:
earlier ones have it already or it expired; later ones are not there yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from waifugen_assets.subscribers.sequences import SUBSCRIBER_TIERS, Sequence, Step, sequence_for


@dataclass(frozen=True)
class DueWindow:
    """Subscribers of `tier` who joined in (oldest, newest] have `step` of `sequence` due."""

    sequence: Sequence
    tier: str
    step: Step
    oldest: dt.datetime
    newest: dt.datetime


def due_windows(sequences: Iterable[Sequence], character_id: str,
                now: dt.datetime) -> Iterator[DueWindow]:
    """Every step's window for the character, tier by tier, in step order."""
    sequences = list(sequences)
    for tier in SUBSCRIBER_TIERS:
        seq = sequence_for(sequences, character_id, tier)
        if seq is None:
            continue
        for step in seq.steps:
            newest = now - dt.timedelta(days=step.day)
            yield DueWindow(seq, tier, step,
                            newest - dt.timedelta(hours=step.expire_after_hours), newest)
