-- One row per subscriber, without any personal column (no external id, handle, display name,
-- tags, score or imported spend). `subscribed_day` is the character's local day of
-- subscribed_at (created_at when the platform gave no subscription time).
select
    s.id                                                    as subscriber_id,
    s.character_id,
    s.platform,
    s.tier,
    (coalesce(s.subscribed_at, s.created_at) at time zone c.timezone)::date as subscribed_day,
    s.forgotten_at is not null                              as is_forgotten
from {{ source('app', 'subscribers') }} as s
join {{ ref('stg_characters') }} as c on c.character_id = s.character_id
