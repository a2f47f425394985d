"""The daily report of one date, built and delivered: what the `daily_report` asset and
`waifugen report` share (reading, chart, texts, the operators' chat)."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from resources.telegram import TelegramNotConfigured, TelegramResource
from waifugen_assets.core.config import Settings
from waifugen_assets.reporting.report_chart import render_chart
from waifugen_assets.reporting.report_data import ReportData, read_report
from waifugen_assets.reporting.report_send import PartOutcome, Report, deliver
from waifugen_assets.reporting.report_text import caption_html, message_html, report_markdown

NOT_CONFIGURED = ("not sent: Telegram is not configured (set TELEGRAM_BOT_TOKEN and "
                  "TELEGRAM_ALERT_CHAT_ID)")


@dataclass(frozen=True)
class BuiltReport:
    data: ReportData
    report: Report  # what goes to Telegram
    markdown: str

    def chart_markdown(self) -> str:
        """The chart inline in Markdown (a data: URL), as Dagster's metadata shows images."""
        encoded = base64.b64encode(self.report.png).decode("ascii")
        return f"![daily report chart {self.data.day}](data:image/png;base64,{encoded})"


def build_report(engine: sa.Engine, day: dt.date, now: dt.datetime,
                 settings: Settings) -> BuiltReport:
    """Read the date's figures and render the chart and texts (MartsMissing when the marts
    have not been built)."""
    with engine.connect() as conn:
        data = read_report(conn, day, now, settings)
    png = render_chart(data.history, f"waifugen daily report {day.isoformat()}: last "
                                     f"{len(data.history.days)} days")
    return BuiltReport(data, Report(day, png, caption_html(data), message_html(data)),
                       report_markdown(data))


def send_report(engine: sa.Engine, telegram: TelegramResource, built: BuiltReport, *,
                resend_unknown: bool = False) -> list[PartOutcome] | None:
    """Deliver to the operators' chat; None when Telegram is not configured."""
    try:
        client, chat_id = telegram.report_client()
    except TelegramNotConfigured:
        return None
    with client:
        return deliver(engine, client, chat_id, built.report, resend_unknown=resend_unknown)
