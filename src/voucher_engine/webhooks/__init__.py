"""Webhooks (回调): subscriptions, an outbox written with each cause, a dispatcher that signs and retries."""
