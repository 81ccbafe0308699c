"""Conformed (standard) models built from source silver tables: silver.orders, refunds, payments, shipments."""
