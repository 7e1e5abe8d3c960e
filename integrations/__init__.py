"""Integrations: the publisher SDK, the LiteLLM hook, OpenAI / Anthropic client wrappers."""
