"""Sagas as declared state machines: definition, validation, a durable engine, exports."""
