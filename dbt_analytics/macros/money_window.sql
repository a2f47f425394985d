-- The window of a daily (tag:daily, incremental) mart: local days, half-open
-- [min_date, max_date) from the vars (dbt_project.yml).

-- A local-day column inside the window.
{% macro money_day_window(column) -%}
({{ column }} >= '{{ window_min_date() }}'::date and {{ column }} < '{{ window_max_date() }}'::date)
{%- endmacro %}

-- A UTC timestamp column that may fall on a local day inside the window: the window widened
-- by a day on each side (every zone is within UTC-12..UTC+14), so the predicate can use the
-- column's index before the exact local-day filter runs.
{% macro money_ts_window(column) -%}
({{ column }} >= ('{{ window_min_date() }}'::date - 1)::timestamp at time zone 'UTC'
 and {{ column }} < ('{{ window_max_date() }}'::date + 1)::timestamp at time zone 'UTC')
{%- endmacro %}

-- Money vars as SQL literals (strings or numbers in the vars both work).
{% macro money_accounting_currency() -%}
'{{ var("accounting_currency") | upper }}'
{%- endmacro %}

{% macro money_credit_price_cents() -%}
'{{ var("credit_price_cents") }}'::numeric
{%- endmacro %}

{% macro money_runpod_cents_per_second() -%}
'{{ var("runpod_cents_per_second") }}'::numeric
{%- endmacro %}
