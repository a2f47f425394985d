-- One row per character: its IANA time zone turns UTC timestamps into its local day (a
-- character's day is its local day everywhere, like the Dagster partitions).
select
    id                          as character_id,
    name                        as character_name,
    timezone,
    enabled,
    created_at
from {{ source('app', 'characters') }}
