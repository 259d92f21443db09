from agentos import Agent, Kernel, ToolRegistry, load_settings
from agentos.errors import InvalidToolCall
from agentos.testing import ScriptedLLM, call

from agentos_units.tools import convert_length


def test_the_tool_converts_and_validates() -> None:
    assert convert_length(value=1, from_unit="mi", to_unit="km") == 1.609344
    assert convert_length.parameters["properties"]["to_unit"]["enum"][:3] == ["mm", "cm", "m"]
    try:
        convert_length(value=1, from_unit="parsec", to_unit="m")
    except InvalidToolCall as error:
        assert "from_unit" in str(error)
    else:
        raise AssertionError("an unknown unit was accepted")


def test_an_agent_calls_it(tmp_path) -> None:
    kernel = Kernel(load_settings(env={"AGENTOS_DATA_DIR": str(tmp_path)}),
                    registry=ToolRegistry())
    llm = ScriptedLLM([call("convert_length", value=5, from_unit="km", to_unit="mi"),
                       "5 km is about 3.1 miles."])
    result = Agent("a", llm=llm, tools=[convert_length], kernel=kernel).run("5 km in miles?")
    kernel.close()
    assert result.ok
    assert result.steps[0].tool_calls[0].output == "3.106856"
