"""`/media`: the public face of the local video store, as nginx serves it in production.

Files under the store's directory (VIDEO_DIR, default WAIFUGEN_HOME/videos) are served at
`<sandbox>/media/<key>` with Range support, which is the store's sandbox public base URL. So
what a platform would fetch by URL (Instagram's `video_url`) exists in the sandbox too, behind
the same journal and faults as every other system.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from sandbox.system import System, SystemContext
from waifugen_assets.core.config import get_settings


def media_root() -> Path:
    settings = get_settings()
    return Path(settings.get("VIDEO_DIR") or settings.home / "videos")


def create(ctx: SystemContext) -> System:
    # check_dir=False: the store creates its directory on the first put. The Starlette app
    # around StaticFiles turns its "not found" into a 404 instead of a 500.
    files = StaticFiles(directory=media_root(), check_dir=False)
    return System(app=Starlette(routes=[Mount("/", app=files)]))
