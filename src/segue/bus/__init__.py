"""RabbitMQ through Kombu: connection, topology, publishing, consuming, inbox, outbox and relay."""
