-- Each published post at 24 h and at 7 d. "At 24 h" is the first snapshot captured at or
-- after published_at + 24 h and before + 72 h; "at 7 d" the first at or after + 168 h and
-- before + 720 h (hours, not calendar days: a DST change must not move the marks). NULL when
-- the post has no reading in that range.
with posts as (
    select
        post_id,
        reel_id,
        character_id,
        platform,
        reel_date               as day,
        published_at,
        published_local_hour    as local_hour
    from {{ ref('stg_social_posts') }}
    where state = 'published'
),

marked as (
    select
        s.post_id,
        s.captured_at,
        s.views,
        s.likes,
        s.comments,
        s.shares,
        case
            when s.captured_at < p.published_at + interval '72 hours' then '24h'
            when s.captured_at >= p.published_at + interval '168 hours' then '7d'
        end as mark
    from {{ ref('stg_engagement_snapshots') }} as s
    join posts as p on p.post_id = s.post_id
    where s.captured_at >= p.published_at + interval '24 hours'
      and s.captured_at < p.published_at + interval '720 hours'
),

-- The first reading of each mark: one join and one sort, no lookup per post.
firsts as (
    select distinct on (post_id, mark)
        post_id, mark, views, likes, comments, shares
    from marked
    where mark is not null
    order by post_id, mark, captured_at
)

select
    p.post_id,
    p.reel_id,
    p.character_id,
    p.platform,
    p.day,
    p.published_at,
    p.local_hour,
    d.views                     as views_24h,
    d.likes                     as likes_24h,
    d.comments                  as comments_24h,
    d.shares                    as shares_24h,
    round((coalesce(d.likes, 0) + coalesce(d.comments, 0) + coalesce(d.shares, 0))::numeric
          / nullif(d.views, 0), 4) as engagement_rate_24h,
    w.views                     as views_7d,
    w.likes                     as likes_7d,
    w.comments                  as comments_7d,
    w.shares                    as shares_7d,
    round((coalesce(w.likes, 0) + coalesce(w.comments, 0) + coalesce(w.shares, 0))::numeric
          / nullif(w.views, 0), 4) as engagement_rate_7d
from posts as p
left join firsts as d on d.post_id = p.post_id and d.mark = '24h'
left join firsts as w on w.post_id = p.post_id and w.mark = '7d'
