"""Airflow hooks of Segue: the RabbitMQ connection of the event path."""
