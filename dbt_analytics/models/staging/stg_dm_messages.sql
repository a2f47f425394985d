-- One row per nurture DM (subscriber x sequence x step), without its text or remote id.
-- `character_id` is the subscriber's character (a default sequence serves every character);
-- `tier` is the sequence's tier; `sequence_key` identifies the sequence version.
select
    m.id                                                    as message_id,
    m.subscriber_id,
    q.key                                                   as sequence_key,
    s.character_id,
    q.tier,
    m.step,
    m.state,
    m.sent_at
from {{ source('app', 'dm_messages') }} as m
join {{ source('app', 'dm_sequences') }} as q on q.id = m.sequence_id
join {{ source('app', 'subscribers') }} as s on s.id = m.subscriber_id
