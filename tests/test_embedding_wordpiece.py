"""The plain-Python WordPiece tokenizer (plugdeck.embedding.wordpiece) gives the `tokenizers` package's
token ids for all-MiniLM-L6-v2: on the SQuAD passages and questions of bench/data, and on text that
exercises each normalisation rule (control characters, accents, CJK, punctuation, special tokens,
long words, truncation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugdeck.embedding import minilm_folder
from plugdeck.embedding.wordpiece import TokenizerError, WordPiece

SQUAD = Path(__file__).resolve().parents[1] / "bench" / "data" / "squad-dev-v1.1-subset.jsonl"
ODD = [
    "Café naïve résumé Ångström Straße", "日本語のテキスト 中文", "tab\there\x00null\x7f ctrl\x0bvt\x0cff",
    "“quotes” — dash… ½ ¼ ①", "[CLS] inside [MASK] text[SEP]x", "e\u0301clair", "ǅemal İstanbul ΟΔΟΣ",
    "a" * 150, "emoji 😀 ok", "\u00a0nbsp\u2009thin\u3000ideo", "x\u0085y\u200bz\ufeffw\ufffdv",
    "ﬁne ligature Ⅻ ㎏", "don't can't o'clock 3.14 $5,000 e-mail", "", "   ", "unaffable unbelievably",
    "The oldest park in Praga was established in 1865. " * 40,  # past 256 tokens
]


@pytest.fixture(scope="module")
def tokenizers_pair():
    tokenizers = pytest.importorskip("tokenizers")  # installed with the knowledge-torch extra ([test] has it)
    path = minilm_folder() / "tokenizer.json"
    reference = tokenizers.Tokenizer.from_file(str(path))
    reference.enable_truncation(256)
    reference.no_padding()
    return WordPiece(path, 256), reference


def squad_texts() -> list[str]:
    texts = []
    for line in SQUAD.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts += [row["context"], *(q[1] for q in row["qas"])]
    return texts


@pytest.mark.parametrize("corpus", ["squad", "odd"])
def test_ids_equal_the_tokenizers_package(tokenizers_pair, corpus):
    ours, reference = tokenizers_pair
    texts = squad_texts() if corpus == "squad" else ODD
    expected = [encoding.ids for encoding in reference.encode_batch(texts)]
    assert ours.encode_batch(texts) == expected
    assert ours.encode_batch(texts) == expected  # again, from the word cache


def test_truncation_keeps_cls_and_sep():
    ids = WordPiece(minilm_folder() / "tokenizer.json", 16).ids("word " * 100)
    assert len(ids) == 16 and ids[0] == 101 and ids[-1] == 102


def test_another_kind_of_tokenizer_is_refused(tmp_path):
    spec = json.loads((minilm_folder() / "tokenizer.json").read_text())
    spec["model"]["type"] = "BPE"
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(TokenizerError, match="not an uncased BERT WordPiece"):
        WordPiece(tmp_path / "tokenizer.json", 256)
