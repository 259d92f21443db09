"""A CrewAI tool used by an agentos agent.

    python examples/crewai_tool.py             # the default model (local/qwen2.5-coder-1.5b)
"""

from __future__ import annotations

from typing import Any

from crewai.tools import BaseTool
from pydantic import BaseModel, Field

from agentos import Agent, AgentResult


class TemperatureArgs(BaseModel):
    celsius: float = Field(description="a temperature in degrees Celsius")


class ToFahrenheit(BaseTool):
    name: str = "to_fahrenheit"
    description: str = "Convert a temperature from Celsius to Fahrenheit."
    args_schema: type[BaseModel] = TemperatureArgs

    def _run(self, celsius: float) -> float:
        return celsius * 9 / 5 + 32


def main(llm: Any = None, kernel: Any = None) -> AgentResult:
    """Run an agent with the CrewAI tool; print its calls and answer."""
    agent = Agent("converter", llm=llm, kernel=kernel, tools=[ToFahrenheit()])
    result = agent.run("What is 21.5 degrees Celsius in Fahrenheit?")
    for step in result.steps:
        for c in step.tool_calls:
            print(f"  {c.name}({c.arguments}) -> {c.output}")
    print(result.answer, result.status)
    if result.error:
        print("error:", result.error)
    return result


if __name__ == "__main__":
    main()
