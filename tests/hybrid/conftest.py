"""Fixtures of the hybrid tests: one thread for tiny models, a char-level tokenizer, a scripted model."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class CharTokenizer:
    """Byte-level tokenizer (ids = bytes + 1, 0 = EOS) with the HF calls that generation uses."""

    eos_token_id = 0
    pad_token_id = 0
    padding_side = "right"

    def __call__(self, text, return_tensors=None, padding=False, **_):
        if isinstance(text, list):  # a batch: pad with 0 on ``padding_side``
            rows = [[b + 1 for b in t.encode()] for t in text]
            width = max(map(len, rows))
            fill = [[0] * (width - len(r)) for r in rows]
            left = self.padding_side == "left"
            ids = torch.tensor([f + r if left else r + f for r, f in zip(rows, fill)])
            mask = torch.tensor([[0] * len(f) + [1] * len(r) if left else [1] * len(r) + [0] * len(f)
                                 for r, f in zip(rows, fill)])
            return {"input_ids": ids, "attention_mask": mask}
        ids = [b + 1 for b in text.encode()]

        class Enc(dict):
            pass

        enc = Enc(input_ids=torch.tensor([ids]) if return_tensors == "pt" else ids)
        enc.input_ids = enc["input_ids"]
        return enc

    def decode(self, ids, skip_special_tokens=False):
        return bytes(int(i) - 1 for i in ids if int(i) > 0).decode(errors="replace")


class ScriptedModel:
    """A 'model' whose generate() writes the next scripted reply a token at a time, honoring stopping criteria."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)

    def generate(self, ids, max_new_tokens, stopping_criteria=(), **_):
        reply = self.replies.pop(0) if self.replies else ""
        out = ids
        for b in reply.encode()[:max_new_tokens]:
            out = torch.cat([out, torch.tensor([[b + 1]])], dim=1)
            if any(bool(c(out, None)[0]) for c in stopping_criteria):
                return out
        return torch.cat([out, torch.tensor([[0]])], dim=1)


class BatchScriptedModel:
    """Scripted replies per prompt for batched generate(): rows are matched to prompts by their
    text; finished rows are padded with 0, as transformers does."""

    def __init__(self, replies: dict[str, list[str]]) -> None:
        self.replies = {k: list(v) for k, v in replies.items()}

    def generate(self, input_ids, max_new_tokens, stopping_criteria=(), attention_mask=None, **_):
        texts = [bytes(int(i) - 1 for i in row if int(i) > 0).decode() for row in input_ids]
        script = []
        for t in texts:
            key = max((k for k in self.replies if t.startswith(k)), key=len)
            script.append((self.replies[key].pop(0) if self.replies[key] else "").encode())
        out, done = input_ids, [False] * len(texts)
        for step in range(max_new_tokens):
            col = [0 if done[r] or step >= len(script[r]) else script[r][step] + 1 for r in range(len(texts))]
            done = [d or c == 0 for d, c in zip(done, col)]
            out = torch.cat([out, torch.tensor(col)[:, None]], dim=1)
            for c in stopping_criteria:
                done = [d or bool(x) for d, x in zip(done, c(out, None))]
            if all(done):
                break
        return out


@pytest.fixture
def char_tokenizer():
    return CharTokenizer()
