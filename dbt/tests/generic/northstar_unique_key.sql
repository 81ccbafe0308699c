{#- A compound key is unique: no combination of `columns` appears twice (dbt's builtin `unique` takes one column). -#}
{% test northstar_unique_key(model, columns) %}
select {{ columns | join(', ') }}, count(*) as duplicate_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
