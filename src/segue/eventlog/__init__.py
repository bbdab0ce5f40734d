"""The event log: every event on the bus recorded once, a per-order timeline, and replay."""
