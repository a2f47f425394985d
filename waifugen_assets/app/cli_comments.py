"""`waifugen comments`: the review queue of comments held for a person (docs/comments.md)."""

from __future__ import annotations

import click

from waifugen_assets.app.cli_common import _app_engine, _fail
from waifugen_assets.core import redaction

TEXT_WIDTH = 120


@click.group()
def comments() -> None:
    """Comment replies on Instagram and YouTube (TikTok has no comment API for this app)."""


def _line(text: str | None, width: int = TEXT_WIDTH) -> str:
    one = " ".join(redaction.redact(text or "").split())
    return one if len(one) <= width else one[: width - 1] + "…"


@comments.command("review")
@click.option("--character", default=None, help="Only this character's held comments.")
@click.option("--approve", "approve_id", type=int, default=None, metavar="ID",
              help="Let held comment ID be answered (the next run sends the reply).")
@click.option("--text", default=None, help="With --approve: the reply to send (checked by the "
              "safety gate; the AI disclosure is added).")
@click.option("--skip", "skip_id", type=int, default=None, metavar="ID",
              help="Never answer held comment ID.")
def comments_review(character: str | None, approve_id: int | None, text: str | None,
                    skip_id: int | None) -> None:
    """List the comments held for review (unsafe, doubtful, or a reply whose fate is unknown),
    or decide one: --approve ID [--text T] or --skip ID."""
    from waifugen_assets.comments.review import ReviewError, approve, held, skip

    if approve_id is not None and skip_id is not None:
        _fail("--approve and --skip: choose one")
    if text is not None and approve_id is None:
        _fail("--text goes with --approve ID")
    engine = _app_engine()
    try:
        if approve_id is not None:
            reply = approve(engine, approve_id, text)
            click.echo(f"comment {approve_id} approved; the next comment_replies run sends: "
                       f"{_line(reply)}")
            return
        if skip_id is not None:
            skip(engine, skip_id)
            click.echo(f"comment {skip_id} skipped: it will not be answered")
            return
    except ReviewError as exc:
        _fail(str(exc))
    queue = held(engine, character)
    for c in queue:
        when = c.commented_at.strftime("%Y-%m-%d %H:%M") if c.commented_at else "-"
        click.echo(f"{c.id}  {c.character_id}  {c.platform}  {when}  "
                   f"{c.classification or '-'}: {_line(c.reason, 80)}")
        click.echo(f"    {_line(c.author, 40) or '?'}: {_line(c.text)}")
        if c.draft:
            click.echo(f"    held reply: {_line(c.draft)}")
        if c.permalink:
            click.echo(f"    post: {c.permalink}")
    who = f" for {character}" if character else ""
    click.echo(f"{len(queue)} comment(s) held for review{who}", err=True)
