"""A crew's stored definition (JSON in the run store) and the crew rebuilt from it.

``agentos crew run`` saves how its crew was made (the built-in crew and its options, or a YAML
crew's text) so ``agentos runs resume`` in another process builds the same crew again. A crew
made in Python has no stored definition; resume it from Python with :meth:`Crew.resume`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentos.errors import RunNotResumable

if TYPE_CHECKING:
    from agentos.crew.crew import Crew
    from agentos.runtime.kernel import Kernel

__all__ = ["builtin_definition", "crew_from_definition"]


def builtin_definition(*, model: str | None, max_rounds: int, approve: bool) -> dict[str, Any]:
    """The definition of the built-in ``research_and_code`` crew with these options."""
    return {"kind": "builtin", "name": "research_and_code", "model": model,
            "max_rounds": max_rounds, "approve": approve}


def crew_from_definition(definition: dict[str, Any], *, kernel: Kernel, **options: Any) -> Crew:
    """Build the crew ``definition`` describes (options go to :class:`Crew`).

    Raises:
        RunNotResumable: a crew defined in Python, or an unknown kind.
        CrewDefinitionError: a stored YAML crew that no longer loads (e.g. a tool is gone).
    """
    kind = definition.get("kind")
    if kind == "yaml":
        from agentos.crew.spec import load_crew

        return load_crew(definition["text"], kernel=kernel, model=definition.get("model"),
                         **options)
    if kind == "builtin" and definition.get("name") == "research_and_code":
        from agentos.crew.builtin import research_and_code
        from agentos.crew.members import default_members

        members = default_members(kernel, definition.get("model"))
        return research_and_code(
            kernel=kernel, approve=bool(definition.get("approve")),
            max_rounds=int(definition.get("max_rounds", 3)), definition=definition,
            **members, **options,
        )
    if kind == "python":
        raise RunNotResumable(
            f"crew {definition.get('name')!r} was defined in Python, so the command line cannot "
            "rebuild it; resume it from your script with `crew.resume(run_id)`"
        )
    raise RunNotResumable(f"unknown crew definition {definition!r}; start the task again")
