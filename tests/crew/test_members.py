"""The built-in crew's members: which Coder format each kind of model gets."""

from __future__ import annotations

from agentos import Kernel
from agentos.crew.members import CoderMember, default_members


def test_a_local_model_gets_the_whole_file_coder_and_a_hosted_one_the_tool_coder(
    kernel: Kernel,
) -> None:
    local = default_members(kernel, "local/qwen2.5-coder-1.5b")["coder"]
    hosted = default_members(kernel, "openai/gpt-4o-mini")["coder"]
    assert isinstance(local, CoderMember) and isinstance(hosted, CoderMember)
    assert (local.coder.edit_format, local.coder.max_steps) == ("whole", 6)
    assert (hosted.coder.edit_format, hosted.coder.max_steps) == ("tools", 30)
