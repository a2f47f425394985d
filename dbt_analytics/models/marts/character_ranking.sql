-- Each character's last 7 and 30 days (ending at as_of, the last day on which any character
-- had engagement or revenue): views, net revenue in the accounting currency and engagement
-- rate, ranked among the characters (dense_rank: 1 = best, ties share a rank).
with perf as (
    select character_id, day, views, likes + comments + shares as interactions
    from {{ ref('platform_performance') }}
),

revenue as (
    select character_id, day, currency, is_accounting_currency, net_revenue_cents
    from {{ ref('daily_revenue_summary') }}
),

as_of as (
    select max(day) as as_of
    from (
        select day from perf where views + interactions > 0
        union all
        select day from revenue where net_revenue_cents <> 0
    ) as data_days
),

windows as (
    select unnest(array[7, 30]) as window_days
),

roster as (
    select character_id from perf
    union
    select character_id from revenue
),

views_in_window as (
    select p.character_id, w.window_days, sum(p.views) as views,
           sum(p.interactions) as interactions
    from perf as p
    cross join windows as w
    cross join as_of as a
    where p.day > a.as_of - w.window_days and p.day <= a.as_of
    group by p.character_id, w.window_days
),

revenue_in_window as (
    select r.character_id, w.window_days, sum(r.net_revenue_cents) as net_revenue_cents
    from revenue as r
    cross join windows as w
    cross join as_of as a
    where r.is_accounting_currency
      and r.day > a.as_of - w.window_days and r.day <= a.as_of
    group by r.character_id, w.window_days
),

totals as (
    select
        a.as_of,
        c.character_id,
        w.window_days,
        coalesce(v.views, 0)::bigint                    as views,
        coalesce(r.net_revenue_cents, 0)::bigint        as net_revenue_cents,
        round(coalesce(v.interactions, 0)::numeric / nullif(coalesce(v.views, 0), 0), 4)
                                                        as engagement_rate
    from roster as c
    cross join windows as w
    cross join as_of as a
    left join views_in_window as v
        on v.character_id = c.character_id and v.window_days = w.window_days
    left join revenue_in_window as r
        on r.character_id = c.character_id and r.window_days = w.window_days
    where a.as_of is not null
)

select
    as_of,
    character_id,
    window_days,
    views,
    net_revenue_cents,
    engagement_rate,
    dense_rank() over (partition by window_days order by views desc)                 as rank_views,
    dense_rank() over (partition by window_days order by net_revenue_cents desc)     as rank_revenue,
    dense_rank() over (partition by window_days order by engagement_rate desc nulls last)
                                                                                    as rank_engagement
from totals
