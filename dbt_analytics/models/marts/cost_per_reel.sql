{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['day', 'character_id'],
    tags=['daily'],
) }}
-- What a character's reels of a LOCAL day (the reel's planned `date`, the Dagster partition's
-- day) cost, against the configured target. Grain: (day, character_id), every character x
-- day from the first to the last day with a reel. Spend is the ledger's task_cost rows of
-- the day's reels, whatever their status: credits paid for a failed render are what the
-- generated ones really cost. Ledger rows not tied to a reel are not in this mart.

with reels as (
    select reel_id, character_id, reel_date, is_generated, is_failed, projected_credits
    from {{ ref('stg_reels') }}
    where {{ money_day_window('reel_date') }}
),

spend_per_reel as (
    select l.reel_id, sum(l.credits_spent) as credits_spent, sum(l.runpod_seconds) as runpod_seconds
    from {{ ref('stg_credit_ledger') }} as l
    join reels as r on r.reel_id = l.reel_id
    where l.is_spend
    group by l.reel_id
),

per_day as (
    select
        r.reel_date                                                     as day,
        r.character_id,
        count(*)                                                        as reels_planned,
        count(*) filter (where r.is_generated)                          as reels_generated,
        count(*) filter (where r.is_failed)                             as reels_failed,
        coalesce(sum(s.credits_spent), 0)                               as credits_spent,
        coalesce(sum(r.projected_credits) filter (where r.is_generated), 0) as projected_credits,
        coalesce(sum(s.runpod_seconds), 0)                              as runpod_seconds
    from reels as r
    left join spend_per_reel as s on s.reel_id = r.reel_id
    group by r.reel_date, r.character_id
),

-- First and last reel day over all history (not the window), so a one-day run makes the same
-- rows as a full build; min/max read the (date, character_id) index.
bounds as (
    select min(reel_date) as first_day, max(reel_date) as last_day from {{ ref('stg_reels') }}
),

days as (
    {{ window_days('bounds') }}
),

filled as (
    select
        d.day,
        c.character_id,
        coalesce(p.reels_planned, 0)        as reels_planned,
        coalesce(p.reels_generated, 0)      as reels_generated,
        coalesce(p.reels_failed, 0)         as reels_failed,
        coalesce(p.credits_spent, 0)        as credits_spent,
        coalesce(p.projected_credits, 0)    as projected_credits,
        coalesce(p.runpod_seconds, 0)       as runpod_seconds
    from days as d
    cross join {{ ref('stg_characters') }} as c
    left join per_day as p on p.day = d.day and p.character_id = c.character_id
)

select
    day,
    character_id,
    reels_planned::bigint                                               as reels_planned,
    reels_generated::bigint                                             as reels_generated,
    reels_failed::bigint                                                as reels_failed,
    credits_spent::bigint                                               as credits_spent,
    projected_credits::bigint                                           as projected_credits,
    round(credits_spent::numeric / nullif(reels_generated, 0), 2)       as credits_per_reel,
    round(projected_credits::numeric / nullif(reels_generated, 0), 2)   as projected_per_reel,
    {{ var('target_credits_per_reel') | int }}                          as target_credits_per_reel,
    round(credits_spent::numeric * 100
          / nullif(reels_generated * {{ var('target_credits_per_reel') | int }}, 0), 1)
                                                                        as vs_target_pct,
    round(credits_spent::numeric * {{ money_credit_price_cents() }}
          / nullif(reels_generated, 0), 2)                              as cost_cents_per_reel,
    runpod_seconds::bigint                                              as runpod_seconds
from filled
