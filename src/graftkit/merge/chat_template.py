"""The ``chat_template`` setting: a Jinja template, ``auto`` (the most common among the inputs) or a name."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from graftkit.errors import ConfigError

if TYPE_CHECKING:
    from graftkit.merge.plan import MergePlan

# the widely used ChatML layout, written out here (not taken from mergekit's data files)
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
NAMED_TEMPLATES = {"chatml": CHATML}


def _model_template(folder: Path | None) -> str | None:
    if folder is None:
        return None
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8").strip()
    cfg = folder / "tokenizer_config.json"
    if cfg.is_file():
        template = json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, dict):
            template = template.get("default")
        if isinstance(template, str):
            return template.strip()
    return None


def resolve_chat_template(plan: "MergePlan") -> str | None:
    """The template text to save with the output, or None to keep the reference's own."""
    setting = plan.config.chat_template
    if not setting:
        return None
    if setting == "auto":
        found = [t for s in plan.sources if (t := _model_template(s.checkpoint.folder))]
        return Counter(found).most_common(1)[0][0] if found else None
    if setting in NAMED_TEMPLATES:
        return NAMED_TEMPLATES[setting]
    if "{" in setting:
        return setting
    raise ConfigError(
        f"chat_template {setting!r} is neither a Jinja template, 'auto', nor a known name",
        hint=f"known names: {', '.join(NAMED_TEMPLATES)}; or paste the template text",
    )


def check_chat_template(plan: "MergePlan") -> list[str]:
    try:
        resolve_chat_template(plan)
    except ConfigError as exc:
        return [str(exc)]
    return []
