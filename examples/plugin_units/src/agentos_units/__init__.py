"""agentos tools: agentos-units (an example plug-in package)."""
