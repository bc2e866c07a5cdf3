"""Notifier: delivers every call's result (or failure) to the partner's ``callback_url``, signed,
retried and durably scheduled."""
