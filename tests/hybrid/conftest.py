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

    def __call__(self, text, return_tensors=None, **_):
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


@pytest.fixture
def char_tokenizer():
    return CharTokenizer()
