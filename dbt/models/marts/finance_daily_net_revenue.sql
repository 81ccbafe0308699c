-- Finance: net revenue per UTC day and currency (all sales channels), from the published daily_revenue mart,
-- next to the same figure recomputed from the published facts (non-cancelled orders' totals minus completed
-- refunds). `matches_facts` false means the mart and the facts it summarises disagree in the warehouse.
with mart as (
    select
        revenue_date,
        currency,
        sum(order_count) as order_count,
        sum(gross_amount) as gross_amount,
        sum(refund_count) as refund_count,
        sum(refund_amount) as refund_amount,
        sum(net_amount) as net_amount,
        max(_loaded_at) as loaded_at
    from {{ source('northstar', 'daily_revenue') }}
    group by revenue_date, currency
),

orders as (
    select order_date as revenue_date, currency, sum(total_amount) as gross_amount
    from {{ source('northstar', 'fact_orders') }}
    where status <> 'cancelled'
    group by order_date, currency
),

refunds as (
    select refund_date as revenue_date, currency, sum(refund_amount) as refund_amount
    from {{ source('northstar', 'fact_refunds') }}
    where status = 'completed'
    group by refund_date, currency
)

select
    mart.revenue_date,
    mart.currency,
    mart.order_count,
    mart.gross_amount,
    mart.refund_count,
    mart.refund_amount,
    mart.net_amount,
    coalesce(orders.gross_amount, 0) - coalesce(refunds.refund_amount, 0) as net_amount_from_facts,
    mart.net_amount = coalesce(orders.gross_amount, 0) - coalesce(refunds.refund_amount, 0) as matches_facts,
    mart.loaded_at
from mart
left join orders
    on orders.revenue_date = mart.revenue_date and orders.currency = mart.currency
left join refunds
    on refunds.revenue_date = mart.revenue_date and refunds.currency = mart.currency
