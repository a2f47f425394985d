"""`waifugen credentials`: ages of the outside credentials and the Fernet keys, and rotation
that proves a new value before it replaces the secret file the services read."""

from __future__ import annotations

import os
import sys

import click

from waifugen_assets.app.cli_common import _app_engine, _fail


@click.group("credentials")
def credentials() -> None:
    """Credential ages (warning from 75 days, expired from 90) and validated rotation."""


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d}" if value is not None else "-"


@credentials.command("status")
def credentials_status() -> None:
    """Record what is configured, then list every credential: kind, age, last use, state."""
    from waifugen_assets.core import clock
    from waifugen_assets.core.config import get_settings
    from waifugen_assets.operations import credentials as creds

    engine = _app_engine()
    now = clock.now()
    for note in creds.sync(engine, get_settings(), now, os.environ):
        click.echo(f"note: {note}")
    rows = creds.status(engine, now)
    if not rows:
        click.echo("no credentials configured")
        return
    width = max(len(r.name) for r in rows)
    click.echo(f"{'name':<{width}}  {'kind':<14} {'age':>8}  {'last used':<10}  "
               f"{'state':<7}  {'rotate by':<10}  fingerprint")
    for r in rows:
        click.echo(f"{r.name:<{width}}  {r.kind:<14} {r.age_days:>3} days  "
                   f"{_when(r.last_used_at):<10}  {r.state:<7}  {_when(r.rotate_by):<10}  "
                   f"{r.fingerprint or '-'}")
    click.echo("")
    if any(r.kind == creds.FERNET_KIND for r in rows):
        click.echo(f"fernet keys: {creds.FERNET_ROTATION}")
    shown = {r.name for r in rows}
    click.echo("others: `waifugen credentials rotate NAME` stores a new value after checking "
               "it with:")
    for spec in creds.CREDENTIALS:
        if spec.name in shown:
            click.echo(f"  {spec.name:<{width}}  {spec.validation}")


@credentials.command("rotate")
@click.argument("name")
@click.option("--from-file", "source", type=click.File("r"), default=None,
              help="File holding the new value (default: stdin; a hidden prompt on a "
              "terminal). Never pass a secret as an argument: it would land in the shell "
              "history.")
@click.option("--access-key-id", default=None,
              help="s3_secret_access_key only: the new key's access key id, validated with "
              "the secret and written to S3_ACCESS_KEY_ID_FILE.")
def credentials_rotate(name: str, source: click.utils.LazyFile | None,
                       access_key_id: str | None) -> None:
    """Check a new value of NAME with the cheapest authenticated read of its system, then
    replace the file NAME_FILE names (0600, atomically) and record the rotation."""
    from waifugen_assets.core import clock
    from waifugen_assets.core.config import get_settings
    from waifugen_assets.operations import credentials as creds

    if source is not None:
        value = source.read()
    elif sys.stdin.isatty():
        value = click.prompt(f"new value of {name}", hide_input=True, show_default=False)
    else:
        value = sys.stdin.read()
    engine = _app_engine()
    try:
        done = creds.rotate(engine, get_settings(), name, value, now=clock.now(),
                            environ=os.environ, pair_value=access_key_id)
    except creds.RotationRefused as exc:
        _fail(str(exc))
        return
    click.echo(f"{done.name}: {done.note}; written to {done.path} (fingerprint "
               f"{done.fingerprint})")
    click.echo(f"next: {done.next_step}")


@credentials.command("forget")
@click.argument("name")
def credentials_forget(name: str) -> None:
    """Drop the record of a credential that is no longer used, so it stops aging."""
    from waifugen_assets.core.config import get_settings
    from waifugen_assets.operations import credentials as creds

    settings = get_settings()
    spec = creds.BY_NAME.get(name)
    in_use = (spec is not None and settings.env.get(spec.setting)) or any(
        name == f"{creds.FERNET_PREFIX}{creds.fingerprint(k)}" for k in settings.secret_keys)
    if in_use:
        _fail(f"{name} is still configured here: unset it first (the next status would "
              "record it again)")
    if not creds.forget(_app_engine(), name):
        _fail(f"no credential named {name!r} is recorded")
    click.echo(f"forgot {name}")
