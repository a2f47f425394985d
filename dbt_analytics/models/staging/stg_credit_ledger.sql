-- Credit ledger (integer credits, never negative). `task_cost` rows are spend;
-- `balance_snapshot` rows are the provider's remaining balance, `adjustment` rows manual
-- corrections: neither counts as spend here.
select
    id                          as entry_id,
    provider,
    kind                        as entry_kind,
    character_id,
    reel_id,
    external_ref,
    credits,
    case when kind = 'task_cost' then credits else 0 end as credits_spent,
    ledger_date,
    occurred_at,
    note
from {{ source('app', 'credit_ledger') }}
