"""The one place that wires assets, jobs, sensors and resources into the code location.

Loads with no environment variables: resources resolve their settings when a run uses them
(sandbox mode by default: embedded PostgreSQL, sandbox servers on loopback).
"""

from __future__ import annotations

import dagster as dg

from resources.a2e import A2EResource
from resources.database import DatabaseResource
from resources.fanvue import FanvueResource
from resources.ffmpeg import FfmpegResource
from resources.instagram import InstagramResource
from resources.ollama import OllamaResource
from resources.roster_file import RosterResource
from resources.runpod import RunPodResource
from resources.telegram import TelegramResource
from resources.tiktok import TikTokResource
from resources.video_store import VideoStoreResource
from resources.youtube import YouTubeResource
from sensors.comments import comments_sensor
from sensors.dms import dm_sensor
from sensors.generation import generation_sensor
from sensors.posting import posting_sensor
from sensors.roster import roster_sensor
from sensors.status import status_sensor
from waifugen_assets.analytics.assets import (
    analytics_daily,
    analytics_staging,
    analytics_tables,
    dbt_resource,
)
from waifugen_assets.analytics.jobs import analytics_tables_job
from waifugen_assets.analytics.schedules import analytics_tables_schedule
from waifugen_assets.comments.assets import comment_replies
from waifugen_assets.comments.jobs import comment_poll_job, comment_replies_job
from waifugen_assets.core.config import get_settings
from waifugen_assets.engagement.assets import engagement_metrics
from waifugen_assets.engagement.jobs import engagement_job
from waifugen_assets.engagement.schedules import engagement_schedule
from waifugen_assets.milestones.assets import character_phases
from waifugen_assets.milestones.jobs import phases_job
from waifugen_assets.milestones.schedules import character_phases_schedule
from waifugen_assets.money.assets import credit_ledger
from waifugen_assets.operations.assets import backups
from waifugen_assets.operations.jobs import backup_job
from waifugen_assets.operations.schedules import backup_schedule
from waifugen_assets.pipeline.catalog import with_code_references
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.planning.jobs import plan_job, weekly_premium_job
from waifugen_assets.planning.schedules import daily_plans_schedule, weekly_premium_schedule
from waifugen_assets.publishing.assets import social_posts
from waifugen_assets.publishing.jobs import daily_content_job, publish_job
from waifugen_assets.rendering.assets import reels
from waifugen_assets.rendering.jobs import render_job
from waifugen_assets.reporting.assets import daily_report, daily_status
from waifugen_assets.reporting.jobs import daily_report_job, status_job
from waifugen_assets.reporting.schedules import daily_report_schedule, daily_status_schedule
from waifugen_assets.roster.assets import characters
from waifugen_assets.roster.jobs import roster_job
from waifugen_assets.subscribers.assets import dm_messages
from waifugen_assets.subscribers.jobs import subscriber_dms_job, subscriber_poll_job
from waifugen_assets.videos.assets import branded_videos, stored_videos


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[*with_code_references([characters, reel_plans, reels, stored_videos,
                                       branded_videos, social_posts, engagement_metrics,
                                       comment_replies, character_phases, dm_messages,
                                       credit_ledger, daily_status, daily_report,
                                       backups]),
                # dbt's: their code is the dbt project (dbt_analytics/).
                analytics_staging, analytics_daily, analytics_tables],
        jobs=[roster_job, plan_job, render_job, publish_job, daily_content_job,
              weekly_premium_job, subscriber_dms_job, subscriber_poll_job, status_job,
              engagement_job, phases_job, comment_replies_job, comment_poll_job,
              analytics_tables_job, daily_report_job, backup_job],
        schedules=[daily_plans_schedule, weekly_premium_schedule, daily_status_schedule,
                   engagement_schedule, character_phases_schedule, analytics_tables_schedule,
                   daily_report_schedule, backup_schedule],
        sensors=[roster_sensor, generation_sensor, posting_sensor, dm_sensor, status_sensor,
                 comments_sensor],
        resources={
            "database": DatabaseResource(),
            "roster": RosterResource(),
            "ollama": OllamaResource(),
            "telegram": TelegramResource(),
            "a2e": A2EResource(),
            "runpod": RunPodResource(),
            "video_store": VideoStoreResource(),
            "ffmpeg": FfmpegResource(),
            "tiktok": TikTokResource(),
            "instagram": InstagramResource(),
            "youtube": YouTubeResource(),
            "fanvue": FanvueResource(),
            "dbt": dbt_resource(),
        },
    )


get_settings()  # production: fail at load, naming any missing setting
defs = build_defs()
