"""Batch APIs of their own shape (issue 19): Together, Mistral, OpenRouter."""
