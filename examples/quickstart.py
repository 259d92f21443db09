"""Quick start: an agent with a custom tool and a built-in one, run through the kernel.

    python examples/quickstart.py            # the embedded local model (default)
    AGENTOS_MODEL=openai/gpt-4o-mini python examples/quickstart.py
"""

from __future__ import annotations

from typing import Any

from agentos import Agent, AgentResult, Kernel, tool


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text to count.
    """
    return len(text.split())


def main(llm: Any = None, kernel: Kernel | None = None) -> AgentResult:
    agent = Agent(
        "editor",
        role="a careful editor who checks numbers with tools",
        llm=llm,
        tools=[word_count, "calculator"],
        max_steps=6,
    )
    result = agent.run(
        "Count the words in 'the quick brown fox jumps over the lazy dog' with word_count, "
        "then multiply that count by 7 with the calculator. Answer with the final number.",
        kernel=kernel,
    )
    print(result.answer)
    print(f"{result.status} in {len(result.steps)} steps, {result.usage['tokens']} tokens, "
          f"run {result.run_id} (agentos runs show {result.run_id})")
    return result


if __name__ == "__main__":
    main()
