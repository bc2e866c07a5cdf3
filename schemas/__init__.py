"""Versioned event schemas shared by every service (see ``schemas.events``)."""
