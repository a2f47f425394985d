"""Names the operations pieces share (issue 14 design): the collector's metrics with their
labels, the alert rules with their severities and the runbooks alerts may point at.
A copy kept here for the tests: CI must not read the design notes. Metric names are
produced by waifugen_assets/operations/metrics.py; a rename there or here fails a test."""

from __future__ import annotations

METRICS: dict[str, tuple[str, ...]] = {
    "waifugen_a2e_credits_remaining": (),
    "waifugen_a2e_credits_runout_timestamp_seconds": (),
    "waifugen_budget_used_ratio": ("provider",),
    "waifugen_reels": ("stage",),
    "waifugen_cost_per_reel_credits": (),
    "waifugen_post_attempts_total": ("platform", "outcome"),
    "waifugen_posts": ("platform", "state"),
    "waifugen_last_post_timestamp_seconds": ("character",),
    "waifugen_dagster_runs": ("job", "status"),
    "waifugen_dagster_run_duration_seconds": ("job",),
    "waifugen_dagster_runs_queued": (),
    "waifugen_dagster_daemon_heartbeat_age_seconds": ("daemon",),
    "waifugen_db_probe_seconds": ("database",),
    "waifugen_dm_messages": ("state",),
    "waifugen_comment_replies": ("state",),
    "waifugen_quota_used_ratio": ("service", "window"),
    "waifugen_backup_last_success_timestamp_seconds": ("database",),
    "waifugen_backup_last_verified_timestamp_seconds": (),
    "waifugen_credential_rotated_timestamp_seconds": ("name",),
    "waifugen_report_last_sent_timestamp_seconds": (),
    "waifugen_collector_errors": ("section",),
}

ALERTS: dict[str, str] = {  # alert -> severity
    "A2ECreditsRunningOut": "warning",
    "BudgetAt80Percent": "warning",
    "BudgetExhausted": "critical",
    "PublishFailureRateHigh": "warning",
    "CharacterSilent": "warning",
    "DMsHeldForReview": "warning",
    "DagsterRunsFailing": "warning",
    "DaemonHeartbeatStale": "critical",
    "BackupStale": "critical",
    "RestoreDrillStale": "warning",
    "CredentialAging": "warning",
    "CredentialExpired": "critical",
}

# (critical, the warning it silences, the label both must share)
INHIBITIONS: tuple[tuple[str, str, str], ...] = (
    ("BudgetExhausted", "BudgetAt80Percent", "provider"),
    ("CredentialExpired", "CredentialAging", "name"),
)

RUNBOOKS: tuple[str, ...] = (  # under docs/runbooks/
    "a2e-down.md", "stuck-run.md", "credits-depleted.md", "database-corruption.md", "README.md",
)
