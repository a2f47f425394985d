"""`waifugen analysts add | list`: read-only PostgreSQL logins for analysts (the marts only;
docs/analytics.md)."""

from __future__ import annotations

import click

from waifugen_assets.app.cli_common import _app_engine, _fail


@click.group()
def analysts() -> None:
    """Read-only database logins that see the analytics marts and nothing else."""


@analysts.command("add")
@click.argument("name")
@click.option("--password-file", type=click.File("r"), default="-", show_default=True,
              help="Read the password from this file ('-': standard input, first line).")
def analysts_add(name: str, password_file) -> None:
    """Create the login NAME (or reset its password) as a member of waifugen_analyst."""
    from waifugen_assets.analytics.access import add_analyst
    from waifugen_assets.core.config import ConfigError

    password = (password_file.readline() or "").rstrip("\r\n")
    try:
        created = add_analyst(_app_engine(), name, password)
    except ConfigError as exc:
        _fail(str(exc))
    click.echo(f"{name}: {'created' if created else 'password reset'}; it can read the "
               "schema `analytics` and nothing else (psql: see docs/analytics.md)")


@analysts.command("list")
def analysts_list() -> None:
    """The logins that are members of waifugen_analyst."""
    from waifugen_assets.analytics.access import analyst_logins

    names = analyst_logins(_app_engine())
    click.echo("\n".join(names) if names else "(no analyst logins yet: `waifugen analysts add`)")
