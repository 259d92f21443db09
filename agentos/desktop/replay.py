"""A desktop run as one HTML page: each action with its decision, outcome and before/after
screenshots, from the journal the session wrote."""

from __future__ import annotations

import html
import json
from pathlib import Path

from agentos.errors import UserError

__all__ = ["read_journal", "write_replay"]


def read_journal(record_dir: Path) -> list[dict[str, object]]:
    """The journal lines of one run, in order.

    Raises:
        UserError: the folder has no journal (not a desktop run, or it took no action).
    """
    path = record_dir / "actions.jsonl"
    if not path.is_file():
        raise UserError(f"no desktop journal at {path}: `agentos runs replay` works for runs of "
                        "`agentos desktop run` that took at least one action")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_replay(record_dir: Path, *, title: str = "", out: Path | None = None) -> Path:
    """Write ``replay.html`` (or ``out``) that steps through the run's actions and screenshots.

    Screenshots are linked by relative path, so the page stays next to them.

    Raises:
        UserError: no journal in ``record_dir``.
    """
    entries = read_journal(record_dir)
    out = out or record_dir / "replay.html"
    rel = Path(".") if out.parent.resolve() == record_dir.resolve() else record_dir.resolve()
    rows = []
    for entry in entries:
        shots = "".join(
            f'<figure><img src="{html.escape(str(rel / str(entry[key])))}" width="560">'
            f"<figcaption>{key}</figcaption></figure>"
            for key in ("before", "after") if entry.get(key)
        )
        rows.append(
            f'<section class="{html.escape(str(entry["outcome"]))}"><h2>{entry["index"]}. '
            f'{html.escape(str(entry["action"]))} '
            f'<code>{html.escape(json.dumps(entry["arguments"]))}</code></h2>'
            f'<p>decision: <b>{html.escape(str(entry["decision"]))}</b>'
            f'{" (" + html.escape(str(entry["reason"])) + ")" if entry.get("reason") else ""}; '
            f'outcome: <b>{html.escape(str(entry["outcome"]))}</b>; verified: '
            f'{html.escape(str(entry.get("verified")))}; {entry.get("seconds")} s</p>'
            f'<p>{html.escape(str(entry.get("note") or ""))}</p>{shots}</section>'
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>agentos desktop replay</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "section{border-top:1px solid #ccc;padding:8px}.refused h2{color:#b00}"
        ".planned h2{color:#a60}figure{display:inline-block;margin:4px}</style>"
        f"<h1>{html.escape(title or record_dir.name)}</h1>"
        f"<p>{len(entries)} actions</p>" + "".join(rows)
    )
    out.write_text(page)
    return out
