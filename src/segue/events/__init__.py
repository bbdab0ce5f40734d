"""The event contract: a CloudEvents 1.0 envelope, versioned payload models and their registry."""
