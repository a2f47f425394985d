-- A row's grain: no two rows share these columns (dbt_utils' unique_combination_of_columns,
-- written here because `dbt deps` cannot reach the dbt hub). Fails with the duplicated keys.
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_with_this_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
