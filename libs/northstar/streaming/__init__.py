"""Streaming product events: Firehose files -> bronze -> silver events, session facts and dashboard aggregates."""
