"""The daily report's chart: one PNG, two panels over the last 14 days.

1. Reels generated and posts published per platform, per day (lines).
2. A2E credits spent per day (bars) against the daily budget (the month's credits / the days
   in that month; a step line, as months differ).

Headless: matplotlib's Figure API on the Agg canvas, no pyplot and its global state, so it is
safe in a Dagster run or a thread. The same data gives the same bytes: fixed size, dpi and
style, and no "Software" version stamp in the PNG metadata. Labels are ASCII only (the
default font has no emoji or CJK glyphs), so character names never appear here.
"""

from __future__ import annotations

import io

from waifugen_assets.reporting.day_markdown import PLATFORM_TITLES
from waifugen_assets.reporting.report_data import History

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.0, 100
_STYLE = {"font.family": "DejaVu Sans", "font.size": 9.0, "axes.grid": True,
          "grid.alpha": 0.3, "svg.hashsalt": "waifugen", "path.simplify": True}
_PLATFORM_COLOURS = {"tiktok": "#111111", "instagram": "#c13584", "youtube": "#ff0000"}


def render_chart(history: History, title: str) -> bytes:
    """The PNG bytes of the chart. `title` must be ASCII (it is drawn with the default font)."""
    # Imported here: matplotlib costs a few hundred ms, and loading the code location (every
    # Dagster process) does not need it.
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not title.isascii():
        raise ValueError("chart labels must be ASCII (the chart font has no other glyphs)")
    labels = [d.strftime("%m-%d") for d in history.days]
    x = list(range(len(labels)))
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True)
        fig.suptitle(title)

        top.plot(x, history.reels_generated, marker="o", linewidth=2, color="#1f77b4",
                 label="reels generated")
        for platform, counts in history.posts_published.items():
            top.plot(x, counts, marker=".", linestyle="--",
                     color=_PLATFORM_COLOURS.get(platform),
                     label=f"posts on {PLATFORM_TITLES.get(platform, platform)}")
        top.set_ylabel("per day")
        top.set_ylim(bottom=0)
        top.yaxis.set_major_locator(MaxNLocator(integer=True))
        top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        top.set_title("Reels generated and posts published", fontsize=9)

        bottom.bar(x, history.credits_spent, color="#2ca02c", label="credits spent")
        bottom.step(x, history.daily_budget, where="mid", color="#d62728", linewidth=2,
                    label="daily budget (month / days)")
        bottom.set_ylabel("A2E credits")
        bottom.set_ylim(bottom=0)
        bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        bottom.set_title("Credits spent against the daily budget", fontsize=9)
        bottom.set_xticks(x, labels, rotation=45)

        out = io.BytesIO()
        fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
