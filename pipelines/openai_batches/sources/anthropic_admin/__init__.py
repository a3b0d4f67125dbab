"""The `anthropic_organization` source: Anthropic's books (workspaces, usage and cost reports) from its Admin API."""
