-- The inbound events the marts count: cancellations (churn) and fan messages (replies to
-- DMs). Never the payload, the normalized data or the platform's ids. The time is
-- occurred_at, else received_at; `day` is the character's local day of it. `is_applied`:
-- processed without error (only applied cancellations are churn); `error` set means the event
-- was rejected. Events that name no character (neither directly nor by their subscriber) have
-- no local day and are left out.
select
    e.id                                                    as inbound_event_id,
    e.subscriber_id,
    coalesce(e.character_id, s.character_id)                as character_id,
    e.platform,
    e.event_type,
    coalesce(e.occurred_at, e.received_at)                  as occurred_at,
    (coalesce(e.occurred_at, e.received_at) at time zone c.timezone)::date as day,
    e.processed_at is not null and e.error is null          as is_applied,
    e.error is not null                                     as is_rejected
from {{ source('app', 'inbound_events') }} as e
left join {{ source('app', 'subscribers') }} as s on s.id = e.subscriber_id
join {{ ref('stg_characters') }} as c on c.character_id = coalesce(e.character_id, s.character_id)
where e.event_type in ('subscriber.cancelled', 'message.received')
