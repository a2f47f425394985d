"""`waifugen sandbox serve | published`: the local stand-ins for every outside API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from waifugen_assets.app.cli_common import _fail, _today, port_option
from waifugen_assets.core.config import SANDBOX_DEFAULT_PORT, get_settings


@click.group()
def sandbox() -> None:
    """Local stand-ins for every outside API."""


@sandbox.command("serve")
@click.option("--port", default=SANDBOX_DEFAULT_PORT, show_default=True, callback=port_option)
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="State directory (default: WAIFUGEN_HOME/sandbox).")
@click.option("--seed", default=None, type=int, help="Seed for deterministic behaviour.")
def sandbox_serve(port: int, state: Path | None, seed: int | None) -> None:
    """Serve every sandbox system on 127.0.0.1:PORT until interrupted."""
    from sandbox.server import serve
    from waifugen_assets.app.local_stack import SANDBOX_SEED

    settings = get_settings()
    serve(host="127.0.0.1", port=port, state_dir=state or settings.sandbox_state,
          seed=SANDBOX_SEED if seed is None else seed)


@sandbox.command("published")
@click.option("--url", default=None, help="A running sandbox (default: WAIFUGEN_SANDBOX_URL, "
              "else the state directory is opened here).")
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="State directory (default: WAIFUGEN_HOME/sandbox).")
@click.option("--json", "as_json", is_flag=True, help="Every post, machine-readable.")
def sandbox_published(url: str | None, state: Path | None, as_json: bool) -> None:
    """What the TikTok, Instagram and YouTube sandboxes published: posts per platform, reels
    posted twice, AI-disclosure flags."""
    import httpx

    from sandbox.published import as_dicts, published, render, summarize
    from sandbox.server import SandboxServer
    from waifugen_assets.app.local_stack import SANDBOX_SEED, one_line
    from waifugen_assets.app.processes import home_sandbox_url

    settings = get_settings()
    base = url or os.environ.get("WAIFUGEN_SANDBOX_URL") or home_sandbox_url(settings.home)
    if base:
        try:
            posts = published(base)
        except (httpx.HTTPError, ValueError) as exc:  # closed port, not a sandbox, bad URL
            _fail(one_line(f"cannot read the sandbox at {base}: {str(exc) or type(exc).__name__}"))
    else:
        where = state or settings.sandbox_state
        if not Path(where).is_dir():
            _fail(f"no sandbox state at {where} (run `make run` first, or pass --url)")
        with SandboxServer(Path(where), seed=SANDBOX_SEED) as server:
            posts = published(server.url)
    if as_json:
        click.echo(json.dumps({"summary": summarize(posts, _today()), "posts": as_dicts(posts)},
                              indent=2))
    else:
        click.echo(render(summarize(posts, _today())))
