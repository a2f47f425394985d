-- Lifetime counters of one post as read at captured_at (UNIQUE post_id x captured_at). NULL
-- where the platform does not report the metric.
select
    id                          as snapshot_id,
    post_id,
    captured_at,
    views,
    likes,
    comments,
    shares,
    saves,
    reach
from {{ source('app', 'engagement_snapshots') }}
