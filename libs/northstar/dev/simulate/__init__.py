"""Local stand-ins for external systems (HTTP servers on 127.0.0.1 with seeded fault injection)."""
