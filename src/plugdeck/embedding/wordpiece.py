"""BERT's uncased WordPiece tokenizer in plain Python, read from the model's `tokenizer.json`.

Why not the `tokenizers` package: it pulls in huggingface-hub and hf-xet, about 40 MB of the knowledge
extra's install, to split text into words. This gives the same token ids as `tokenizers` for the
BertNormalizer (clean text, CJK characters apart, accents stripped, lowercase), BertPreTokenizer
(whitespace and punctuation) and WordPiece model that all-MiniLM-L6-v2 uses, with [CLS] and [SEP]
around each text (tests/plugins/knowledge/test_wordpiece.py compares them on the SQuAD passages and
odd text). Words are looked up once and remembered, so most of a corpus costs a dictionary hit.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from . import EmbeddingError

# Unicode White_Space characters that survive the cleaning (the control characters among them are removed)
_SPACES = frozenset("\u0020\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
                    "\u2028\u2029\u202f\u205f\u3000")
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASCII_PUNCTUATION = re.compile(r"""([!-/:-@\[-`{-~])""")


class TokenizerError(EmbeddingError):
    """The tokenizer file is not one this reader understands."""


@lru_cache(maxsize=4096)
def _char_kind(ch: str) -> str:
    """How the normaliser and pre-tokeniser treat one non-ASCII character: drop, space, cjk,
    punct(uation), or keep."""
    category = unicodedata.category(ch)
    if ch == "\ufffd" or category.startswith("C"):
        return "drop"
    if ch in _SPACES:
        return "space"
    if any(low <= ord(ch) <= high for low, high in _CJK):
        return "cjk"
    if category.startswith("P"):
        return "punct"
    return "keep"


def _words_ascii(text: str) -> list[str]:
    text = _ASCII_CONTROL.sub("", text).replace("\t", " ").replace("\n", " ").replace("\r", " ").lower()
    return _ASCII_PUNCTUATION.sub(r" \1 ", text).split()


def _words_unicode(text: str) -> list[str]:
    pieces: list[str] = []
    for ch in text:
        kind = "keep" if ch.isascii() and ch.isalnum() else _char_kind(ch) if not ch.isascii() else None
        if kind is None:  # other ASCII: the control characters, whitespace and punctuation
            if ch in "\t\n\r ":
                pieces.append(" ")
            elif _ASCII_CONTROL.match(ch) is None:
                pieces.append(f" {ch} " if _ASCII_PUNCTUATION.match(ch) else ch)
        elif kind == "space":
            pieces.append(" ")
        elif kind == "cjk":
            pieces.append(f" {ch} ")
        elif kind != "drop":
            pieces.append(ch)
    # accents go after the cleaning, then the text is lowercased (as BertNormalizer does)
    stripped = "".join(c for c in unicodedata.normalize("NFD", "".join(pieces)) if unicodedata.category(c) != "Mn")
    words = []
    # character by character, as `tokenizers` does: no final sigma (str.lower's one rule with context)
    for word in stripped.replace("\u03a3", "\u03c3").lower().split():
        if word.isalnum():
            words.append(word)
            continue
        current = ""
        for ch in word:  # punctuation (also what lowercasing or decomposition produced) stands alone
            if (ch.isascii() and _ASCII_PUNCTUATION.match(ch)) or (not ch.isascii() and _char_kind(ch) == "punct"):
                if current:
                    words.append(current)
                words += [ch]
                current = ""
            else:
                current += ch
        if current:
            words.append(current)
    return words


class WordPiece:
    """`encode_batch(texts)` gives each text's token ids, [CLS] ... [SEP], at most `max_tokens` long."""

    def __init__(self, path: Path, max_tokens: int):
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        model, normalizer = spec.get("model") or {}, spec.get("normalizer") or {}
        if model.get("type") != "WordPiece" or normalizer.get("type") != "BertNormalizer" \
                or not normalizer.get("lowercase") or normalizer.get("strip_accents") is False:
            raise TokenizerError(f"{path} is not an uncased BERT WordPiece tokenizer")
        self.vocab: dict[str, int] = model["vocab"]
        self.prefix = model.get("continuing_subword_prefix", "##")
        self.longest_word = int(model.get("max_input_chars_per_word", 100))
        self.unk = self.vocab[model.get("unk_token", "[UNK]")]
        self.cls, self.sep = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.max_tokens = max_tokens
        # Special tokens written in the text are matched before normalisation, as `tokenizers` does.
        specials = [t["content"] for t in spec.get("added_tokens", []) if t.get("special")]
        self._specials = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None
        self._pieces: dict[str, tuple[int, ...]] = {}

    def _word_ids(self, word: str) -> tuple[int, ...]:
        """Greedy longest-match WordPiece; a word with any part not in the vocabulary is [UNK]."""
        found = self._pieces.get(word)
        if found is not None:
            return found
        ids: list[int] = []
        if len(word) > self.longest_word:
            ids = [self.unk]
        start = 0
        while start < len(word) and not ids[-1:] == [self.unk]:
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            else:
                ids = [self.unk]
                break
            start = end
        if len(self._pieces) < 200_000:
            self._pieces[word] = tuple(ids)
        return tuple(ids)

    def ids(self, text: str) -> list[int]:
        ids: list[int] = []
        parts = self._specials.split(text) if self._specials else [text]
        for i, part in enumerate(parts):
            if i % 2:  # a special token, as written
                ids.append(self.vocab[part])
                continue
            for word in (_words_ascii(part) if part.isascii() else _words_unicode(part)):
                ids.extend(self._word_ids(word))
        return [self.cls, *ids[: self.max_tokens - 2], self.sep]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.ids(text) for text in texts]
