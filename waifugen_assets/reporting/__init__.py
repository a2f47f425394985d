"""Reporting: the day at a glance, read from the app database (`status`: per character, reels
per stage, posts per platform, budget, DMs and what waits; `day_markdown`: that day as the
`daily_status` asset's Markdown, live-post links, plotted numbers and the day-complete check).

Above every stage it reads; the CLI's `waifugen status` and the Dagster asset share it.
"""
