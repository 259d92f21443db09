"""A LangChain tool used by an agentos agent, and an agentos tool used by LangChain.

    python examples/langchain_tool.py          # the default model (local/qwen2.5-coder-1.5b)
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool as lc_tool

from agentos import Agent, AgentResult, tool
from agentos.interop.langchain_tools import to_langchain


@lc_tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text.
    """
    return len(text.split())


def main(llm: Any = None, kernel: Any = None) -> AgentResult:
    """Run an agent whose tools are a LangChain tool and an agentos one; print what it did."""
    as_langchain = to_langchain(word_count)  # the other way: usable in any LangChain app
    print("LangChain sees:", as_langchain.name, as_langchain.invoke({"text": "one two three"}))
    agent = Agent("shouter", llm=llm, kernel=kernel, tools=[shout, word_count])
    result = agent.run("Shout the text 'hello plug-ins', then count its words.")
    for step in result.steps:
        for c in step.tool_calls:
            print(f"  {c.name}({c.arguments}) -> {c.output}")
    print(result.answer, result.status)
    if result.error:
        print("error:", result.error)
    return result


if __name__ == "__main__":
    main()
