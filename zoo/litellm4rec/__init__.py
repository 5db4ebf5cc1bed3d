"""Lite-LLM4Rec (arXiv 2402.09543) and its baselines: data, networks and metrics of the litellm4rec family."""
