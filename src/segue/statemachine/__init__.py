"""Sagas as declared state machines: definition, validation, a durable runner, exports."""
