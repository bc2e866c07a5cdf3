"""Infrastructure shared by every service: settings base, logging, PostgreSQL, Kafka, outbox, health.

Nothing here knows about a particular service's business; services import from here and from
``schemas``, never from each other.
"""
