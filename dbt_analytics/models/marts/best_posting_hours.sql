-- Per character x platform x local hour: how the posts published in that hour did at 24 h
-- (post_performance), against the character's average on that platform. Only posts with a
-- 24 h reading count; an hour is worth suggesting when it has at least 3 of them.
with readings as (
    select character_id, platform, local_hour, views_24h, engagement_rate_24h
    from {{ ref('post_performance') }}
    where views_24h is not null
),

per_hour as (
    select
        character_id,
        platform,
        local_hour,
        count(*)                                                    as posts,
        sum(views_24h)                                              as views_sum,
        percentile_cont(0.5) within group (order by views_24h)      as median_views,
        avg(engagement_rate_24h)                                    as avg_rate
    from readings
    group by character_id, platform, local_hour
),

overall as (
    select character_id, platform, count(*) as posts, sum(views_24h) as views_sum
    from readings
    group by character_id, platform
)

select
    h.character_id,
    h.platform,
    h.local_hour,
    h.posts::integer                                        as posts,
    round(h.views_sum::numeric / h.posts, 2)                as avg_views_24h,
    round(h.median_views::numeric, 2)                       as median_views_24h,
    round(h.avg_rate, 4)                                    as avg_engagement_rate_24h,
    -- (hour sum / hour posts) / (all sum / all posts), in one exact division.
    round(h.views_sum::numeric * o.posts / nullif(h.posts * o.views_sum, 0), 2) as lift,
    h.posts >= 3                                            as enough_data
from per_hour as h
join overall as o on o.character_id = h.character_id and o.platform = h.platform
