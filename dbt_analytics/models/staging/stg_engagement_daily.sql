-- What a character's posts on one platform gained on one LOCAL day (the engagement rollup:
-- the last reading by the day's end minus the last before it), one row per
-- character x day x platform.
select
    character_id,
    "date"                      as day,
    platform,
    posts_read,
    views,
    likes,
    comments,
    shares,
    saves
from {{ source('app', 'engagement_daily') }}
