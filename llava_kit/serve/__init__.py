"""Serving a trained model: an OpenAI-compatible chat-completions server (``llava-kit
serve``) with batching of concurrent requests, and the web chat (``llava-kit demo``)."""
