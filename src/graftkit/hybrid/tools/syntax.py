"""The tool-call syntax that generated text uses, and how results are written back.

A call is ``<tool:NAME>ARGUMENT</tool>``. ARGUMENT is either a JSON object (passed as the
tool's arguments) or plain text, which goes to the tool's first required parameter
(``calculate``'s ``expression``). The runtime answers right after the call with
``<result>VALUE</result>`` or ``<result>error: MESSAGE</result>`` and generation continues.

Example: ``Q: What is 37*41?\\nA: <tool:calculate>37*41</tool><result>1517</result> 1517``
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

CALL = re.compile(r"<tool:([A-Za-z_][\w.-]{0,63})>(.*?)</tool>", re.DOTALL)
OPEN = re.compile(r"<tool(?::([^>]*))?>")
END = "</tool>"


@dataclass
class ToolCall:
    name: str
    argument: str
    start: int
    end: int
    error: str | None = None  # set when the call is malformed

    def arguments(self, schema: dict[str, Any] | None) -> dict[str, Any]:
        """JSON object arguments as given; plain text to the first required parameter."""
        text = self.argument.strip()
        if text.startswith("{"):
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError("JSON arguments must be an object")
            return value
        required = (schema or {}).get("required") or list((schema or {}).get("properties", {}))
        if not required:
            raise ValueError(f"tool {self.name!r} takes no text argument; pass a JSON object")
        return {required[0]: text}


def find_call(text: str, start: int = 0) -> ToolCall | None:
    """The first complete call in ``text[start:]``; a closed call whose opening tag is not
    ``<tool:NAME>`` comes back with ``error`` set so the runtime can answer it."""
    end = text.find(END, start)
    if end < 0:
        return None
    match = CALL.search(text, start, end + len(END))
    if match:
        return ToolCall(match.group(1), match.group(2), match.start(), match.end())
    opening = OPEN.search(text, start, end)
    begin = opening.start() if opening else end
    return ToolCall("", text[begin:end], begin, end + len(END),
                    error="malformed tool call: write <tool:NAME>ARGUMENT</tool>")


def format_result(value: str, error: bool = False) -> str:
    value = value.replace("</result>", "")
    return f"<result>{'error: ' if error else ''}{value}</result>"
