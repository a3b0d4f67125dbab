"""The `openai_organization` source: the organisation's projects, daily usage and costs from the Admin API."""
