-- The window of local days a daily (tag:daily) mart rebuilds, half-open [start, end).
-- `--vars '{"min_date": ..., "max_date": ...}'` sets it ad hoc. Dagster sets it through the
-- environment (DBT_WINDOW_MIN_DATE / DBT_WINDOW_MAX_DATE), read only when the model runs
-- (`execute`), never while parsing: a var or a parsed environment variable that changes every
-- run would cost every daily run a re-parse (seconds of its 5-second budget), while this
-- leaves the saved parse valid. Neither set: everything.
{% macro window_min_date() -%}
{%- if execute -%}
{{ var('min_date', env_var('DBT_WINDOW_MIN_DATE', '2000-01-01')) }}
{%- else -%}
2000-01-01
{%- endif -%}
{%- endmacro %}

{% macro window_max_date() -%}
{%- if execute -%}
{{ var('max_date', env_var('DBT_WINDOW_MAX_DATE', '9999-12-31')) }}
{%- else -%}
9999-12-31
{%- endif -%}
{%- endmacro %}

-- The days of the window that lie between a CTE's `first_day` and `last_day` (a mart's span
-- of data over all history, so a one-day run makes the rows a full build makes).
{% macro window_days(bounds) -%}
select d::date as day
from {{ bounds }},
    generate_series(
        greatest({{ bounds }}.first_day, '{{ window_min_date() }}'::date)::timestamp,
        least({{ bounds }}.last_day, '{{ window_max_date() }}'::date - 1)::timestamp,
        interval '1 day'
    ) as d
{%- endmacro %}
