"""Conformed (standard) models built from source silver tables: silver.orders and silver.refunds."""
