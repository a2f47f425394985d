-- One row per planned reel (app table `reels`, waifugen_assets/core/schema.py). The one place
-- to adapt when that table changes. `reel_date` is the character's local day.
select
    id                          as reel_id,
    character_id,
    "date"                      as reel_date,
    slot::integer               as slot,
    tier,
    content_rating,
    status,
    status in (
        {%- for s in var('generated_reel_statuses') %}
        '{{ s }}'{{ "," if not loop.last }}
        {%- endfor %}
    )                           as is_generated,
    status = 'failed'           as is_failed,
    generation_provider,
    generation_task_id,
    projected_credits::bigint   as projected_credits,
    scheduled_at,
    created_at,
    updated_at
from {{ source('app', 'reels') }}
