-- Credit ledger (amounts never negative; the kind gives the meaning). Spend is a `task_cost`
-- row: A2E rows hold credits, RunPod rows hold SECONDS of worker time, so they get their own
-- columns and are never added together. `balance_snapshot` (the provider's remaining balance,
-- with the credits already taken for unfinished tasks in `in_flight_credits`), `top_up`
-- (credits bought) and `adjustment` (a manual correction) are not spend.
-- `character_id` falls back to the reel's character for rows written without one.
select
    l.id                                                    as entry_id,
    l.provider,
    l.kind,
    coalesce(l.character_id, r.character_id)                as character_id,
    l.reel_id,
    l.external_ref,
    l.credits,
    case when l.kind = 'task_cost' and l.provider = 'a2e'
         then l.credits else 0 end                          as credits_spent,
    case when l.kind = 'task_cost' and l.provider = 'runpod'
         then l.credits else 0 end                          as runpod_seconds,
    l.kind = 'task_cost'                                    as is_spend,
    case when l.kind = 'top_up' then l.credits else 0 end   as top_up_credits,
    case when l.kind = 'balance_snapshot'
         then l.credits end                                 as balance_credits,
    l.in_flight_credits,
    l.ledger_date,
    l.occurred_at,
    l.note
from {{ source('app', 'credit_ledger') }} as l
left join {{ source('app', 'reels') }} as r on r.id = l.reel_id
