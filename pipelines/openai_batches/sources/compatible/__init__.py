"""OpenAI-shaped batch APIs of other providers (Azure OpenAI, Groq, any OpenAI-compatible endpoint)."""
