-- One row per reel x platform (unique); `state` is the publishing state machine.
select
    id                          as post_id,
    reel_id,
    platform,
    state,
    ai_disclosure,
    remote_post_id              as platform_post_id,
    permalink,
    attempts,
    error_class,
    published_at,
    (published_at at time zone 'UTC')::date as published_date_utc,
    created_at
from {{ source('app', 'social_posts') }}
