{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['day', 'character_id'],
    tags=['daily'],
) }}
-- Revenue, subscribers, reels and costs per character per LOCAL day and currency.
-- Grain: (day, character_id, currency). The accounting-currency row exists for every
-- character x day of the spine; other currencies only where they had revenue. Counts and costs
-- sit on the accounting-currency row only, so sums over currencies never double count.
-- unique_key is (day, character_id), coarser than the grain on purpose: a rebuilt day replaces
-- every currency row of the character's day, also a currency whose revenue has gone since.
{% set acc = money_accounting_currency() %}

with revenue as (
    select
        day,
        character_id,
        currency,
        sum(amount_cents) filter (where kind = 'subscription')  as subscription_cents,
        sum(amount_cents) filter (where kind = 'renewal')       as renewal_cents,
        sum(amount_cents) filter (where kind = 'tip')           as tip_cents,
        sum(amount_cents) filter (where kind = 'purchase')      as purchase_cents,
        sum(amount_cents) filter (where kind = 'refund')        as refund_cents
    from {{ ref('stg_revenue_events') }}
    where {{ money_ts_window('occurred_at') }}
      and {{ money_day_window('day') }}
    group by day, character_id, currency
),

reels as (
    select reel_date as day, character_id, count(*) as reels_generated
    from {{ ref('stg_reels') }}
    where is_generated and {{ money_day_window('reel_date') }}
    group by reel_date, character_id
),

spend as (
    select
        ledger_date         as day,
        character_id,
        sum(credits_spent)  as credits_spent,
        sum(runpod_seconds) as runpod_seconds
    from {{ ref('stg_credit_ledger') }}
    where is_spend and character_id is not null and {{ money_day_window('ledger_date') }}
    group by ledger_date, character_id
),

new_subscribers as (
    select subscribed_day as day, character_id, count(*) as new_subscribers
    from {{ ref('stg_subscribers') }}
    where {{ money_day_window('subscribed_day') }}
    group by subscribed_day, character_id
),

churn as (
    select day, character_id, count(*) as churned_subscribers
    from {{ ref('stg_subscriber_events') }}
    where event_type = 'subscriber.cancelled' and is_applied and {{ money_day_window('day') }}
    group by day, character_id
),

-- First and last day with anything this mart counts, over all history (not the window): a
-- one-day run then makes the same rows as a full build, empty days included.
bounds as (
    select min(first_day) as first_day, max(last_day) as last_day
    from (
        select min(day) as first_day, max(day) as last_day
        from {{ ref('stg_revenue_events') }}
        union all
        select min(reel_date), max(reel_date) from {{ ref('stg_reels') }} where is_generated
        union all
        select min(ledger_date), max(ledger_date) from {{ ref('stg_credit_ledger') }}
        where is_spend and character_id is not null
        union all
        select min(subscribed_day), max(subscribed_day) from {{ ref('stg_subscribers') }}
        union all
        select min(day), max(day) from {{ ref('stg_subscriber_events') }}
        where event_type = 'subscriber.cancelled' and is_applied
    ) as per_source
),

days as (
    {{ window_days('bounds') }}
),

accounting_rows as (
    select
        d.day,
        c.character_id,
        {{ acc }}                                           as currency,
        true                                                as is_accounting_currency,
        coalesce(r.subscription_cents, 0)                   as subscription_cents,
        coalesce(r.renewal_cents, 0)                        as renewal_cents,
        coalesce(r.tip_cents, 0)                            as tip_cents,
        coalesce(r.purchase_cents, 0)                       as purchase_cents,
        coalesce(r.refund_cents, 0)                         as refund_cents,
        coalesce(n.new_subscribers, 0)                      as new_subscribers,
        coalesce(ch.churned_subscribers, 0)                 as churned_subscribers,
        coalesce(g.reels_generated, 0)                      as reels_generated,
        coalesce(s.credits_spent, 0)                        as credits_spent,
        round(coalesce(s.credits_spent, 0) * {{ money_credit_price_cents() }})
                                                            as credit_cost_cents,
        coalesce(s.runpod_seconds, 0)                       as runpod_seconds,
        round(coalesce(s.runpod_seconds, 0) * {{ money_runpod_cents_per_second() }})
                                                            as runpod_cost_cents
    from days as d
    cross join {{ ref('stg_characters') }} as c
    left join revenue as r
        on r.day = d.day and r.character_id = c.character_id and r.currency = {{ acc }}
    left join new_subscribers as n on n.day = d.day and n.character_id = c.character_id
    left join churn as ch on ch.day = d.day and ch.character_id = c.character_id
    left join reels as g on g.day = d.day and g.character_id = c.character_id
    left join spend as s on s.day = d.day and s.character_id = c.character_id
),

other_currency_rows as (
    select
        r.day,
        r.character_id,
        r.currency,
        false                               as is_accounting_currency,
        coalesce(r.subscription_cents, 0)   as subscription_cents,
        coalesce(r.renewal_cents, 0)        as renewal_cents,
        coalesce(r.tip_cents, 0)            as tip_cents,
        coalesce(r.purchase_cents, 0)       as purchase_cents,
        coalesce(r.refund_cents, 0)         as refund_cents,
        0                                   as new_subscribers,
        0                                   as churned_subscribers,
        0                                   as reels_generated,
        0                                   as credits_spent,
        0                                   as credit_cost_cents,
        0                                   as runpod_seconds,
        0                                   as runpod_cost_cents
    from revenue as r
    where r.currency <> {{ acc }}
),

all_rows as (
    select * from accounting_rows
    union all
    select * from other_currency_rows
)

select
    day,
    character_id,
    currency::text                                                  as currency,
    is_accounting_currency,
    subscription_cents::bigint                                      as subscription_cents,
    renewal_cents::bigint                                           as renewal_cents,
    tip_cents::bigint                                               as tip_cents,
    purchase_cents::bigint                                          as purchase_cents,
    (subscription_cents + renewal_cents + tip_cents + purchase_cents)::bigint
                                                                    as gross_revenue_cents,
    refund_cents::bigint                                            as refund_cents,
    (subscription_cents + renewal_cents + tip_cents + purchase_cents - refund_cents)::bigint
                                                                    as net_revenue_cents,
    new_subscribers::bigint                                         as new_subscribers,
    churned_subscribers::bigint                                     as churned_subscribers,
    reels_generated::bigint                                         as reels_generated,
    credits_spent::bigint                                           as credits_spent,
    credit_cost_cents::bigint                                       as credit_cost_cents,
    runpod_seconds::bigint                                          as runpod_seconds,
    runpod_cost_cents::bigint                                       as runpod_cost_cents,
    (credit_cost_cents + runpod_cost_cents)::bigint                 as total_cost_cents,
    (subscription_cents + renewal_cents + tip_cents + purchase_cents - refund_cents
     - credit_cost_cents - runpod_cost_cents)::bigint               as margin_cents
from all_rows
