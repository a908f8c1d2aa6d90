"""CRM, helpdesk and webhook adapters: how an outbox delivery reaches a vendor.

- ``base``: the adapter protocol, events and results, retryable vs permanent errors;
- ``registry``: the integration kinds, their config/secrets models and builders;
- ``webhook``, ``zendesk``, ``salesforce``, ``hubspot``, ``freshdesk``: one adapter each;
- ``signing``: Standard Webhooks signatures (outgoing webhooks, the inbound webhook);
- ``ssrf``: only public targets unless private ones are allowed;
- ``transport``: the one guarded, classified request every adapter sends;
- ``ticket_content``: how a ticket reads in a vendor's record;
- ``fields``: bounded field types of the config and secrets models.

Nothing here touches the database or FastAPI; the caller passes one shared
``httpx.AsyncClient`` with its timeouts.
"""
