-- Credits spent per generated reel, per character per day (the reel's planned day, i.e. the
-- `date` of the character x date partition). Spend on failed or retried generations counts:
-- it is what the generated reels really cost. Ledger entries not tied to a reel (balance
-- snapshots, top-ups) are not in this table.
with reels as (
    select reel_id, character_id, reel_date, is_generated
    from {{ ref('stg_reels') }}
),

spend_per_reel as (
    select reel_id, sum(credits_spent) as credits_spent
    from {{ ref('stg_credit_ledger') }}
    where reel_id is not null
    group by reel_id
),

per_day as (
    select
        r.character_id,
        r.reel_date,
        count(*)                                        as reels_planned,
        count(*) filter (where r.is_generated)          as reels_generated,
        coalesce(sum(s.credits_spent), 0)::bigint       as credits_spent
    from reels as r
    left join spend_per_reel as s on s.reel_id = r.reel_id
    group by r.character_id, r.reel_date
)

select
    character_id || '|' || to_char(reel_date, 'YYYY-MM-DD')  as partition_key,
    character_id,
    reel_date,
    reels_planned,
    reels_generated,
    credits_spent,
    round(credits_spent::numeric / nullif(reels_generated, 0), 2) as credits_per_generated_reel
from per_day
