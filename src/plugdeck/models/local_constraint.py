"""Constrained decoding for the local runtime: tool calls generated under a grammar (llguidance).

The grammar allows either an answer in text (which can never hold `<tool_call>`) or one or more `<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>` blocks whose JSON
is valid for the offered tool it names; with `required`, only calls. Each step the matcher gives the
tokens the grammar allows next, and every other token's logit is set to -inf, so even a weak model's
call is well-formed and schema-valid when it finishes.

Why llguidance (measured in ../shared/docs/dependencies.md and bench/local_decoding.py): a 3 MB
abi3 wheel with no dependencies, grammar compile and first mask in milliseconds, and the most
correct of the three tried (xgrammar needs triton on Linux and let a raw control character into a
string; outlines-core is larger and slower to build a JSON-schema index). JSON whitespace is fixed
(", " and ": "): weak models given free whitespace loop on it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..errors import UserError
from ..tools import ToolSpec
from .call_schema import any_call_schema

log = logging.getLogger(__name__)
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ",
                # Keywords llguidance does not implement (a `format`, say) are left to the tool's own
                # validation, which every call passes before it runs.
                "lenient": True}


class ConstraintError(UserError):
    """The offered tools' schemas could not be made into a grammar."""


def tool_call_grammar(specs: list[ToolSpec], *, required: bool = False) -> str:
    """A Lark grammar (llguidance's dialect) for an answer or tool calls to `specs`."""
    schema = {**any_call_schema(specs), "x-guidance": JSON_OPTIONS}
    lines = [
        "start: calls" if required else "start: calls | answer",
        'calls: call ("\\n" call)*',
        f"call: {json.dumps(CALL_OPEN + chr(10))} %json {json.dumps(schema)} {json.dumps(chr(10) + CALL_CLOSE)}",
    ]
    if not required:
        # An answer cannot begin a call: it does not start with "<", and no "<" in it is followed by "t".
        lines += ["answer: ANSWER", r"ANSWER: /[^<\s]([^<]|<[^t])*<?/"]
    return "\n".join(lines)


class TokenConstraint:
    """One generation's matcher: which tokens may come next, and the tokens that came."""

    def __init__(self, tokenizer: Any, grammar: str):
        import llguidance
        import numpy as np

        self._np = np
        ll_tokenizer = _ll_tokenizer(tokenizer)
        self.matcher = llguidance.LLMatcher(ll_tokenizer, grammar, log_level=0)
        if self.matcher.is_error():
            raise ConstraintError(f"the tools' schemas could not be compiled into a grammar: {self.matcher.get_error()}")
        self.vocab_size = ll_tokenizer.vocab_size  # the mask's length; a model may have more (padding) logits
        self._bitmask = np.full((self.vocab_size + 31) // 32, -1, dtype=np.int32)

    def allowed(self) -> Any:
        """A boolean numpy array over the vocabulary: the tokens the grammar allows next."""
        self.matcher.unsafe_compute_mask_ptr(self._bitmask.ctypes.data, self._bitmask.nbytes)
        bits = self._np.unpackbits(self._bitmask.view(self._np.uint8), bitorder="little")
        return bits[: self.vocab_size].astype(bool)

    def consume(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise ConstraintError(f"the grammar refused token {token}: {self.matcher.get_error()}")

    @property
    def finished(self) -> bool:
        """Nothing but the end may come: the output is complete."""
        return self.matcher.is_stopped()


_tokenizers: dict[int, Any] = {}


def _ll_tokenizer(tokenizer: Any) -> Any:
    """llguidance's view of a Hugging Face fast tokenizer (about a second to build: kept per tokenizer)."""
    key = id(tokenizer)
    if key not in _tokenizers:
        import llguidance.hf

        eos = getattr(tokenizer, "plugdeck_eos_ids", None) or tokenizer.eos_token_id
        _tokenizers[key] = (tokenizer, llguidance.hf.from_tokenizer(tokenizer, eos_token=eos))
    return _tokenizers[key][1]
