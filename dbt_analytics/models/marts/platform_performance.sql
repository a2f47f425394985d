-- Per LOCAL day x character x platform: the posts of the day's reels by outcome, and what the
-- character's posts on that platform gained that day (engagement_daily). Incremental: a run
-- with vars min_date/max_date rebuilds only those days (delete+insert on the grain).
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['day', 'character_id', 'platform'],
    tags=['daily'],
) }}

with posts as (
    select character_id, reel_date as day, platform, state
    from {{ ref('stg_social_posts') }}
    where reel_date >= '{{ window_min_date() }}'::date
      and reel_date < '{{ window_max_date() }}'::date
),

gains as (
    select character_id, day, platform, views, likes, comments, shares, saves
    from {{ ref('stg_engagement_daily') }}
    where day >= '{{ window_min_date() }}'::date
      and day < '{{ window_max_date() }}'::date
),

-- All time, not the window: which platforms a character posts on and its first and last day
-- with data must not depend on the days being rebuilt (aggregated per source first: cheap).
activity as (
    select character_id, platform, min(reel_date) as first_day, max(reel_date) as last_day
    from {{ ref('stg_social_posts') }}
    group by character_id, platform
    union all
    select character_id, platform, min(day), max(day)
    from {{ ref('stg_engagement_daily') }}
    group by character_id, platform
),

pairs as (
    select distinct character_id, platform from activity
),

spans as (
    select character_id, min(first_day) as first_day, max(last_day) as last_day
    from activity
    group by character_id
),

-- Each character's days from its first to its last day with data, inside the window.
spine as (
    select s.character_id, d::date as day
    from spans as s
    cross join lateral generate_series(
        greatest(s.first_day, '{{ window_min_date() }}'::date),
        least(s.last_day, '{{ window_max_date() }}'::date - 1),
        interval '1 day'
    ) as d
),

post_counts as (
    select
        character_id,
        day,
        platform,
        count(*)                                                     as posts_planned,
        count(*) filter (where state = 'published')                  as posts_published,
        count(*) filter (where state = 'failed_permanent')           as posts_failed,
        count(*) filter (where state in ('skipped', 'deferred', 'planned')) as posts_not_sent
    from posts
    group by character_id, day, platform
)

select
    s.day,
    s.character_id,
    p.platform,
    coalesce(pc.posts_planned, 0)::integer      as posts_planned,
    coalesce(pc.posts_published, 0)::integer    as posts_published,
    coalesce(pc.posts_failed, 0)::integer       as posts_failed,
    coalesce(pc.posts_not_sent, 0)::integer     as posts_not_sent,
    coalesce(g.views, 0)::bigint                as views,
    coalesce(g.likes, 0)::bigint                as likes,
    coalesce(g.comments, 0)::bigint             as comments,
    coalesce(g.shares, 0)::bigint               as shares,
    coalesce(g.saves, 0)::bigint                as saves,
    round((coalesce(g.likes, 0) + coalesce(g.comments, 0) + coalesce(g.shares, 0))::numeric
          / nullif(coalesce(g.views, 0), 0), 4) as engagement_rate
from spine as s
join pairs as p on p.character_id = s.character_id
left join post_counts as pc
    on pc.character_id = s.character_id and pc.day = s.day and pc.platform = p.platform
left join gains as g
    on g.character_id = s.character_id and g.day = s.day and g.platform = p.platform
