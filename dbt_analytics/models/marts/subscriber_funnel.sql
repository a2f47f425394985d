-- How each DM sequence step performs: of the messages sent, how many got a reply and how many
-- were followed by a payment within 7 days, and that money. Grain: (character_id,
-- sequence_key, step), every step with at least one message (any state). "Within 7 days":
-- after sent_at and at most 7 days later. Attribution is per step and not exclusive: one
-- payment counts for every step sent to that subscriber in the 7 days before it.
-- Subscriber ids only serve the joins; the mart holds counts and sums.
{% set acc = money_accounting_currency() %}

with messages as (
    select message_id, subscriber_id, sequence_key, character_id, tier, step, state, sent_at
    from {{ ref('stg_dm_messages') }}
),

sent as (
    select * from messages where state = 'sent'
),

replied as (
    select s.message_id
    from sent as s
    where exists (
        select 1
        from {{ ref('stg_subscriber_events') }} as e
        where e.subscriber_id = s.subscriber_id
          and e.event_type = 'message.received'
          and not e.is_rejected
          and e.occurred_at > s.sent_at
          and e.occurred_at <= s.sent_at + interval '7 days'
    )
),

revenue_7d as (
    select
        s.message_id,
        bool_or(e.kind <> 'refund')                                             as converted,
        sum(e.gross_cents - e.refund_cents) filter (where e.currency = {{ acc }}) as acc_cents,
        sum(e.gross_cents - e.refund_cents) filter (where e.currency <> {{ acc }})
                                                                                as other_cents
    from sent as s
    join {{ ref('stg_revenue_events') }} as e
        on e.subscriber_id = s.subscriber_id
        and e.occurred_at > s.sent_at
        and e.occurred_at <= s.sent_at + interval '7 days'
    group by s.message_id
),

per_message as (
    select
        s.message_id,
        s.character_id,
        s.sequence_key,
        s.step,
        rp.message_id is not null           as is_replied,
        coalesce(rv.converted, false)       as is_converted,
        coalesce(rv.acc_cents, 0)           as acc_cents,
        coalesce(rv.other_cents, 0)         as other_cents
    from sent as s
    left join replied as rp on rp.message_id = s.message_id
    left join revenue_7d as rv on rv.message_id = s.message_id
),

steps as (
    select character_id, sequence_key, step, min(tier) as tier
    from messages
    group by character_id, sequence_key, step
),

per_step as (
    select
        st.character_id,
        st.sequence_key,
        st.tier,
        st.step,
        count(pm.message_id)                            as sent,
        count(*) filter (where pm.is_replied)           as replied,
        count(*) filter (where pm.is_converted)         as converted,
        coalesce(sum(pm.acc_cents), 0)                  as revenue_7d_cents,
        coalesce(sum(pm.other_cents), 0)                as revenue_7d_other_currencies_cents
    from steps as st
    left join per_message as pm
        on pm.character_id = st.character_id
        and pm.sequence_key = st.sequence_key
        and pm.step = st.step
    group by st.character_id, st.sequence_key, st.tier, st.step
)

select
    character_id,
    sequence_key,
    tier,
    step,
    sent::bigint                                            as sent,
    replied::bigint                                         as replied,
    converted::bigint                                       as converted,
    revenue_7d_cents::bigint                                as revenue_7d_cents,
    revenue_7d_other_currencies_cents::bigint               as revenue_7d_other_currencies_cents,
    round(replied::numeric / nullif(sent, 0), 4)            as reply_rate,
    round(converted::numeric / nullif(sent, 0), 4)          as conversion_rate
from per_step
