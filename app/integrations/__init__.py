"""CRM and helpdesk adapters (Zendesk, Salesforce, HubSpot, Freshdesk, webhooks).

Arrives with the closed-loop capability; nothing here yet.
"""
