"""Quick start: an agent with a custom tool and a built-in one, run through the kernel.

This file is the README's quick start, line for line.

    python examples/quickstart.py                                  # the embedded local model
    AGENTOS_MODEL=openai/gpt-4o-mini python examples/quickstart.py  # any litellm model string
"""

from agentos import Agent, tool

@tool
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())

agent = Agent("editor", tools=[word_count, "calculator"])   # default model: local/qwen2.5-coder-1.5b
result = agent.run("Count the words in 'the quick brown fox jumps over the lazy dog', then multiply by 7.")
print(result.answer, result.status, result.usage["tokens"], result.run_id)
