{#- Every row of `model` whose `columns` are all set has a row in `to` with the same values in `fields`
    (dbt's builtin `relationships` takes one column). -#}
{% test northstar_relationships_key(model, columns, to, fields) %}
select {% for c in columns %}child.{{ c }}{% if not loop.last %}, {% endif %}{% endfor %}
from {{ model }} as child
left join {{ to }} as parent
  on {% for c in columns %}child.{{ c }} = parent.{{ fields[loop.index0] }}{% if not loop.last %} and {% endif %}{% endfor %}
where {% for c in columns %}child.{{ c }} is not null and {% endfor %}parent.{{ fields[0] }} is null
{% endtest %}
