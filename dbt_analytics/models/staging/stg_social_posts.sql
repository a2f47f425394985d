-- One row per reel x platform (unique); `state` is the publishing state machine. The reel
-- gives the post its character and its day (the reel's planned LOCAL day, the partition
-- date); `published_local_hour` is the hour of published_at in the character's time zone.
select
    sp.id                       as post_id,
    sp.reel_id,
    sp.platform,
    sp.state,
    sp.ai_disclosure,
    sp.remote_post_id           as platform_post_id,
    sp.permalink,
    sp.attempts,
    sp.error_class,
    sp.published_at,
    (sp.published_at at time zone 'UTC')::date as published_date_utc,
    sp.created_at,
    r.character_id,
    r."date"                    as reel_date,
    extract(hour from sp.published_at at time zone c.timezone)::integer as published_local_hour
from {{ source('app', 'social_posts') }} as sp
join {{ source('app', 'reels') }} as r on r.id = sp.reel_id
join {{ ref('stg_characters') }} as c on c.character_id = r.character_id
