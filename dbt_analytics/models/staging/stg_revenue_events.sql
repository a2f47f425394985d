-- One row per revenue event, on the character's LOCAL day. Amounts are integer cents in the
-- event's own currency (never converted); a refund is money going back (amount positive,
-- counted in `refund_cents`). The platform's event id is left out.
-- Marts filter `occurred_at` (indexed) by their window widened by a day on each side before
-- they filter `day`: PostgreSQL pushes that predicate through this view onto the index.
select
    e.id                                                    as revenue_event_id,
    e.character_id,
    e.subscriber_id,
    e.platform,
    e.kind,
    e.amount_cents,
    e.currency::text                                        as currency,
    case when e.kind <> 'refund' then e.amount_cents else 0 end as gross_cents,
    case when e.kind = 'refund' then e.amount_cents else 0 end  as refund_cents,
    e.occurred_at,
    (e.occurred_at at time zone c.timezone)::date           as day
from {{ source('app', 'revenue_events') }} as e
join {{ ref('stg_characters') }} as c on c.character_id = e.character_id
